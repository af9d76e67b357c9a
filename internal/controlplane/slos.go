package controlplane

// The SLO engine's adapter (issue 14): internal/sloctl does the work; this file only
// constructs it from the server's parts and routes the API to it. Hooks elsewhere,
// each marked "SLO hook": Config's SLO fields (server.go), the slos field and its
// start in Start (server.go), and the routes in newAPI (api.go).

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/notify"
	"fermion.dev/fermion/internal/slo"
	"fermion.dev/fermion/internal/sloctl"
)

// startSLOs opens the SLO buckets, builds the controller and runs it on runCtx.
func (s *Server) startSLOs(ctx, runCtx context.Context, js jetstream.JetStream, replicas int) error {
	b, err := sloctl.OpenBuckets(ctx, js, replicas)
	if err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	var src slo.Source = s.slis // the fleet SLI store (api_slis.go), started before
	if s.cfg.SLISource != nil {
		src = s.cfg.SLISource
	}
	var n *notify.Notifier
	var receivers []notify.Receiver
	for i, u := range s.cfg.Alertmanagers {
		receivers = append(receivers, notify.Receiver{Name: "alertmanager-" + strconv.Itoa(i+1), Kind: notify.Alertmanager, URL: u})
	}
	for i, u := range s.cfg.AlertWebhooks {
		receivers = append(receivers, notify.Receiver{Name: "webhook-" + strconv.Itoa(i+1), Kind: notify.Webhook, URL: u})
	}
	if len(receivers) > 0 {
		if n, err = notify.New(notify.Config{Receivers: receivers, Registerer: s.cfg.Metrics, Logger: s.logger.With("component", "notify")}); err != nil {
			return fmt.Errorf("control plane: alert receivers: %w", err)
		}
	}
	c, err := sloctl.New(sloctl.Config{Buckets: b, Source: src, Notifier: n, Interval: s.cfg.SLOInterval,
		Lead:   func() (uint64, bool) { return s.lead.Term(), s.Acting() },
		Event:  s.evlog.event,
		Apps:   s.sloApps,
		Server: s.cfg.Name, Logger: s.logger.With("component", "slo"), Registerer: s.cfg.Metrics})
	if err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	s.slos, s.api.slos = c, c
	s.goRun(runCtx, c.Run)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.WaitReady(wctx); err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	if s.sliReady != nil {
		close(s.sliReady) // the SLI store's ingest may start: the SLOs' thresholds are known
	}
	return nil
}

// sloApps lists the deployments for the SLO warnings.
func (s *Server) sloApps() []sloctl.App {
	var out []sloctl.App
	s.st.Deployments.Each(func(name string, d *v1.Deployment, _ uint64) {
		if !d.Deleting {
			out = append(out, sloctl.App{Name: name, Labels: d.Version.Labels})
		}
	})
	return out
}

// SLOs is the SLO controller (the rollout controller marks versions expected on it).
func (s *Server) SLOs() *sloctl.Controller { return s.slos }

// sloRoutes registers the SLO and alert routes: deployers change, viewers read.
func (s *api) sloRoutes(route routeFunc) {
	route("GET /v1/slos", v1.RoleViewer, func(_ http.ResponseWriter, _ *http.Request, _ cred) (any, int, *v1.Error) {
		return s.slos.List(), http.StatusOK, nil
	})
	route("PUT /v1/slos", v1.RoleDeployer, func(_ http.ResponseWriter, r *http.Request, caller cred) (any, int, *v1.Error) {
		return s.applySLOs(r, "", caller)
	})
	route("GET /v1/slos/{name}", v1.RoleViewer, func(_ http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
		out, e := s.slos.Get(r.PathValue("name"))
		return out, http.StatusOK, e
	})
	route("PUT /v1/slos/{name}", v1.RoleDeployer, func(_ http.ResponseWriter, r *http.Request, caller cred) (any, int, *v1.Error) {
		name := r.PathValue("name")
		if err := v1.ValidName("SLO", name); err != nil {
			return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Field: "name", Message: err.Error()}
		}
		return s.applySLOs(r, name, caller)
	})
	route("DELETE /v1/slos/{name}", v1.RoleDeployer, func(_ http.ResponseWriter, r *http.Request, caller cred) (any, int, *v1.Error) {
		if e := s.slos.Delete(r.Context(), r.PathValue("name"), "", "token "+caller.ID); e != nil {
			return nil, 0, e
		}
		return nil, http.StatusNoContent, nil
	})
	route("GET /v1/slos/{name}/status", v1.RoleViewer, func(_ http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
		out, e := s.slos.Status(r.Context(), r.PathValue("name"))
		return out, http.StatusOK, e
	})
	route("GET /v1/alerts", v1.RoleViewer, func(_ http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
		all := false
		if v := r.URL.Query().Get("all"); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Field: "all", Message: fmt.Sprintf("%q: want true or false", v)}
			}
			all = b
		}
		out, e := s.slos.Alerts(r.Context(), all)
		return out, http.StatusOK, e
	})
	route("POST /v1/alerts/expected", v1.RoleDeployer, func(_ http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
		var m v1.AlertMark
		if e := decodeBody(r, &m); e != nil {
			return nil, 0, e
		}
		if e := s.slos.Mark(r.Context(), m); e != nil {
			return nil, 0, e
		}
		return nil, http.StatusNoContent, nil
	})
}

// applySLOs is PUT /v1/slos and PUT /v1/slos/{name}: the list, or the one SLO.
func (s *api) applySLOs(r *http.Request, name string, caller cred) (any, int, *v1.Error) {
	var req v1.SLOApply
	if e := decodeBody(r, &req); e != nil {
		return nil, 0, e
	}
	out, created, e := s.slos.Apply(r.Context(), req.File, req.Source, name, "token "+caller.ID)
	if e != nil {
		return nil, 0, e
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	if name != "" {
		return out[0], status, nil
	}
	return v1.SLOList{SLOs: out}, status, nil
}

// manifestSLOs reads the [[slo]] tables of an artifact's normalised manifest as specs
// of deployment. Each SLO is named <deployment>-<name>, so two apps' "availability"
// SLOs do not collide.
func manifestSLOs(raw json.RawMessage, deployment string) ([]slo.Spec, error) {
	var doc struct {
		SLO []slo.ManifestSLO `json:"slo"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("read the manifest's [[slo]] tables: %w", err)
	}
	out := make([]slo.Spec, 0, len(doc.SLO))
	for i, ms := range doc.SLO {
		ms.Name = deployment + "-" + ms.Name
		sp, probs := ms.Spec("fermion.toml", fmt.Sprintf("slo[%d]", i), deployment)
		if len(probs) > 0 {
			return nil, fmt.Errorf("[[slo]] %s: %s: %s", ms.Name, probs[0].Field, probs[0].Msg)
		}
		out = append(out, sp)
	}
	return out, nil
}

// applyOwnedSLOs stores the deployment's [[slo]] tables as SLOs it owns and deletes
// the ones it owned that its manifest no longer declares. The deployment is already
// written: what fails comes back as warnings.
func (s *api) applyOwnedSLOs(ctx context.Context, deployment string, img *resolvedImage, caller cred) []string {
	specs, err := manifestSLOs(img.manifest, deployment)
	if err != nil {
		return []string{"SLOs not applied: " + err.Error()}
	}
	var warnings []string
	if len(specs) > 0 {
		// Their only warning would be that this very deployment is not in the table
		// yet: leave it out.
		if _, _, e := s.slos.ApplySpecs(ctx, specs, deployment, "deployment "+deployment+" (token "+caller.ID+")"); e != nil {
			return []string{"SLOs not applied: " + e.Message}
		}
	}
	keep := map[string]bool{}
	for _, sp := range specs {
		keep[sp.Name] = true
	}
	for _, cur := range s.slos.List().SLOs {
		if cur.Owner == deployment && !keep[cur.Name] {
			if e := s.slos.Delete(ctx, cur.Name, deployment, "deployment "+deployment+" (its manifest no longer declares it)"); e != nil && e.Code != v1.CodeNotFound {
				warnings = append(warnings, "SLO "+cur.Name+" not deleted: "+e.Message)
			}
		}
	}
	return warnings
}

// deleteOwnedSLOs deletes the SLOs a deleted deployment's manifest declared.
func (s *api) deleteOwnedSLOs(ctx context.Context, deployment string) {
	if err := s.slos.DeleteOwned(ctx, deployment, "deployment "+deployment+" (deleted)"); err != nil {
		s.logger.Warn("delete the SLOs of a deleted deployment", "deployment", deployment, "err", err)
	}
}
