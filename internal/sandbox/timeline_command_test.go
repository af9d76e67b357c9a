package sandbox_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/telemetry"
)

// TestTimelineCommand: a command module's instances, one per request, get the same
// timeline records as a reactor's: made for a request, "command" as how, the one request
// each serves under the number Response.Instance carries, and why it ended — exited
// after a clean run, or the failure that stopped it.
func TestTimelineCommand(t *testing.T) {
	e, _ := newEngine(t)
	f := load(t, e, spec("cgi", command(t, guestCGI)))
	var ids []uint64
	for range 3 {
		resp := wantOK(t, f, get("/cgi/x"), "path: /cgi/x")
		ids = append(ids, resp.Instance)
	}
	if ids[0] == 0 || ids[0] == ids[1] || ids[1] == ids[2] {
		t.Fatalf("instances %v: want a new number per run", ids)
	}
	tls, dropped := f.Timelines()
	if len(tls) != 3 || dropped != 0 {
		t.Fatalf("%d timelines (%d dropped), want 3: %+v", len(tls), dropped, tls)
	}
	for i, tl := range tls {
		if want := ids[2-i]; tl.ID != want { // most recently discarded first
			t.Errorf("timeline %d is instance %d, want %d", i, tl.ID, want)
		}
		if tl.State != "discarded" || tl.Start != sandbox.StartCommand || tl.Reason != telemetry.StartRequest ||
			tl.Version != version || tl.Requests != 1 || tl.Errors != 0 || tl.LastRequest.IsZero() ||
			tl.MemoryBytes == 0 || tl.InitMillis <= 0 || tl.Discarded.Before(tl.LastRequest) ||
			tl.DiscardReason != sandbox.ReasonExited || tl.DiscardDetail != "" {
			t.Errorf("timeline %d: %+v", i, tl)
		}
		if got, want := eventKinds(tl), "created,initialized,first_request,discarded"; got != want {
			t.Errorf("timeline %d: events %s, want %s", i, got, want)
		}
		if d := tl.Events[1].Detail; d != sandbox.StartCommand {
			t.Errorf("timeline %d: initialized %q, want %q", i, d, sandbox.StartCommand)
		}
	}
	if st := f.Stats(); st != (sandbox.Stats{}) {
		t.Errorf("stats %+v: a command leaves no instance behind", st)
	}
}

// TestTimelineCommandFailures: a failed run's timeline counts the failed request and
// ends with the reason that stopped it, its error as the detail; a run that exited
// but wrote a bad response ended as exited, the response's fault as the detail.
func TestTimelineCommandFailures(t *testing.T) {
	tests := []struct {
		name       string
		guest      rawGuest
		wantStatus int
		wantReason string // the error's
		wantEnd    string // the timeline's discard reason
		wantDetail string
	}{
		{name: "traps", guest: rawGuest{init: opUnreachable},
			wantStatus: 500, wantReason: telemetry.ReasonTrap, wantEnd: telemetry.ReasonTrap, wantDetail: "unreachable"},
		{name: "exit status", guest: rawGuest{init: cat(i32(3), call(fnProcExit))},
			wantStatus: 500, wantReason: telemetry.ReasonTrap, wantEnd: telemetry.ReasonTrap, wantDetail: "exited with status 3"},
		{name: "loops forever", guest: rawGuest{init: loopsForever},
			wantStatus: 504, wantReason: telemetry.ReasonTimeout, wantEnd: telemetry.ReasonTimeout, wantDetail: "timeout"},
		{name: "floods stdout", guest: rawGuest{init: writeText(1, 4<<10, 0)}.withText(strings.Repeat("y", 1024)),
			wantStatus: 502, wantReason: telemetry.LimitResponseBody, wantEnd: telemetry.LimitResponseBody, wantDetail: "limit of 1024 bytes"},
		{name: "no output", guest: rawGuest{},
			wantStatus: 502, wantReason: telemetry.ReasonBadResponse, wantEnd: sandbox.ReasonExited, wantDetail: "empty output"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newEngine(t)
			tt.guest.command = true
			s := rawSpec(tt.guest)
			if tt.wantReason == telemetry.ReasonTimeout {
				s.Limits.Timeout = shortTimeout
			}
			s.Limits.MaxResponseBody = 1024
			f := load(t, e, s)
			resp, err := invoke(t, f, get("/"))
			wantError(t, resp, err, tt.wantStatus, tt.wantReason)
			tl := onlyTimeline(t, f)
			if tl.State != "discarded" || tl.Start != sandbox.StartCommand || tl.Requests != 1 || tl.Errors != 1 ||
				tl.DiscardReason != tt.wantEnd || !strings.Contains(tl.DiscardDetail, tt.wantDetail) {
				t.Fatalf("timeline %+v, want one failed request, discarded as %s with %q", tl, tt.wantEnd, tt.wantDetail)
			}
			if got, want := eventKinds(tl), "created,initialized,first_request,request_failed,discarded"; got != want {
				t.Errorf("events %s, want %s", got, want)
			}
		})
	}
}

// TestTimelineCommandStartFailure: a run whose module fails to instantiate (its data
// segment lies past its memory) is discarded as start, serving no request.
func TestTimelineCommandStartFailure(t *testing.T) {
	e, _ := newEngine(t)
	g := rawGuest{command: true, pages: 1, data: []rawData{{offset: 2 << 16, bytes: []byte("x")}}}
	f, err := e.Load(t.Context(), spec("raw", g.wasm()))
	if err != nil {
		t.Skipf("the module is refused at load (%v): nothing to start", err)
	}
	defer f.Close(t.Context())
	resp, err := invoke(t, f, get("/"))
	wantError(t, resp, err, http.StatusInternalServerError, telemetry.ReasonTrap)
	tl := onlyTimeline(t, f)
	if tl.DiscardReason != sandbox.ReasonStart || tl.Requests != 0 || !strings.Contains(tl.DiscardDetail, "failed to start") {
		t.Fatalf("timeline %+v, want a start failure with no request", tl)
	}
	if got, want := eventKinds(tl), "created,discarded"; got != want {
		t.Errorf("events %s, want %s", got, want)
	}
}

// TestTimelineCommandHammer: concurrent command runs and readers of the timelines; each
// run gets its own number, none is left live, and past TimelineKeep runs the oldest are
// counted as dropped.
func TestTimelineCommandHammer(t *testing.T) {
	e, _ := newEngine(t)
	s := rawSpec(rawGuest{command: true, init: writeText(1, 1, 0)}.withText("Content-Type: text/plain\n\nhi"))
	const workers, each = 4, 10
	s.Limits.MaxConcurrency = workers
	f := load(t, e, s)
	ids := make(chan uint64, workers*each)
	stopReading := readTimelines(f)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				resp, err := f.Invoke(context.Background(), get("/"))
				if err != nil {
					t.Error(err)
					return
				}
				ids <- resp.Instance
			}
		}()
	}
	wg.Wait()
	stopReading()
	close(ids)
	seen := map[uint64]bool{}
	for id := range ids {
		if id == 0 || seen[id] {
			t.Fatalf("instance number %d given twice or zero", id)
		}
		seen[id] = true
	}
	tls, dropped := f.Timelines()
	if len(tls) != sandbox.TimelineKeep || dropped != workers*each-sandbox.TimelineKeep {
		t.Fatalf("%d timelines, %d dropped; want %d and %d", len(tls), dropped, sandbox.TimelineKeep, workers*each-sandbox.TimelineKeep)
	}
	for _, tl := range tls {
		if !seen[tl.ID] || tl.State != "discarded" || tl.Requests != 1 || tl.DiscardReason != sandbox.ReasonExited {
			t.Errorf("timeline %+v: want a run this test made, one request, exited", tl)
		}
	}
}
