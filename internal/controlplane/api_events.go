package controlplane

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	v1 "fermion.dev/fermion/api/v1"
)

// The /v1/events handler: history and follow.

func parseEventFilter(r *http.Request) (eventFilter, *v1.Error) {
	q := r.URL.Query()
	f := eventFilter{Deployment: q.Get("deployment"), Node: q.Get("node"), Type: q.Get("type"), Limit: 100}
	bad := func(field, format string, args ...any) (eventFilter, *v1.Error) {
		return f, &v1.Error{Code: v1.CodeBadRequest, Field: field, Message: fmt.Sprintf(format, args...)}
	}
	if f.Type != "" && v1.ValidName("type", strings.ReplaceAll(f.Type, "_", "-")) != nil {
		return bad("type", "%q is not an event type", f.Type)
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			return bad("limit", "%q: want 1 to 10000", v)
		}
		f.Limit = n
	}
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return bad("after", "%q: want an event sequence number", v)
		}
		f.After = n
	}
	if v := q.Get("since"); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			f.Since = time.Now().Add(-d)
		} else if t, err := time.Parse(time.RFC3339, v); err == nil {
			f.Since = t
		} else {
			return bad("since", "%q: want a duration (1h) or an RFC 3339 time", v)
		}
	}
	return f, nil
}

func (s *api) apiEvents(w http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
	f, e := parseEventFilter(r)
	if e != nil {
		return nil, 0, e
	}
	follow := r.URL.Query().Get("follow")
	if follow != "true" && follow != "1" {
		evs, err := s.evlog.events(r.Context(), f)
		if err != nil {
			return nil, 0, unavailable("read events", err)
		}
		return v1.EventList{Events: evs}, http.StatusOK, nil
	}
	// Follow: the history the filter selects, then new events as they come.
	evs, err := s.evlog.events(r.Context(), f)
	if err != nil {
		return nil, 0, unavailable("read events", err)
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	after := f.After
	for _, ev := range evs {
		enc.Encode(ev)
		after = ev.Seq
	}
	if after == 0 {
		if info, err := s.st.Events.Info(r.Context()); err == nil {
			after = info.State.LastSeq
		}
	}
	rc.Flush()
	f.After, f.Since = after, time.Time{}
	s.evlog.followEvents(r.Context(), f, func(ev v1.Event) error {
		if err := enc.Encode(ev); err != nil {
			return err
		}
		return rc.Flush()
	}, func() error {
		if _, err := w.Write([]byte("\n")); err != nil {
			return err
		}
		return rc.Flush()
	})
	return nil, 0, nil
}
