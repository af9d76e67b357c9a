package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Kind is the protocol a receiver speaks.
type Kind string

const (
	// Alertmanager receivers get POST <URL>/api/v2/alerts with a JSON array of alerts.
	Alertmanager Kind = "alertmanager"
	// Webhook receivers get POST <URL> with a WebhookMessage.
	Webhook Kind = "webhook"
)

// Receiver is one place alerts go.
type Receiver struct {
	// Name labels the receiver's metrics and log lines: letters, digits, '-', '_'.
	Name string
	Kind Kind
	// URL is Alertmanager's base address (http://alertmanager:9093) or the webhook's
	// full address.
	URL string
	// ResendInterval re-sends every firing alert this often. Alertmanager receivers
	// default to DefaultResendInterval (Alertmanager expires alerts that are not
	// re-sent); webhooks default to 0, once per change.
	ResendInterval time.Duration
}

// Defaults for Config fields left zero.
const (
	DefaultResendInterval = time.Minute
	DefaultQueueSize      = 1000
	DefaultBatchSize      = 64
	DefaultMinBackoff     = time.Second
	DefaultMaxBackoff     = time.Minute
	DefaultTimeout        = 10 * time.Second
)

// Config configures a Notifier. Only Receivers is required.
type Config struct {
	Receivers []Receiver
	// QueueSize bounds each receiver's queue of alerts not yet delivered; past it the
	// oldest is dropped and counted.
	QueueSize int
	// BatchSize is the most alerts sent in one request.
	BatchSize int
	// MinBackoff and MaxBackoff bound the wait before retrying a failed request; it
	// doubles from MinBackoff with each consecutive failure.
	MinBackoff, MaxBackoff time.Duration
	// Timeout bounds one request.
	Timeout time.Duration
	// Client sends the requests; nil: a client of its own.
	Client *http.Client
	// Now stamps Alertmanager's endsAt of firing alerts; nil: time.Now.
	Now func() time.Time
	// Registerer gets the notifier's metrics; nil: not registered.
	Registerer prometheus.Registerer
	// Logger gets failures and drops; nil: discarded.
	Logger *slog.Logger
}

// Notifier delivers alerts to its receivers. Send queues; Run delivers until its
// context is cancelled or Close is called.
type Notifier struct {
	cfg       Config
	receivers []*receiver
	m         metrics

	stop     chan struct{}
	stopOnce sync.Once
	mu       sync.Mutex    // guards runDone
	runDone  chan struct{} // closed when Run returns; nil before Run
}

type metrics struct {
	sent, failed, dropped *prometheus.CounterVec
	queued                *prometheus.GaugeVec
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// New checks cfg and returns a Notifier that delivers nothing until Run.
func New(cfg Config) (*Notifier, error) {
	if len(cfg.Receivers) == 0 {
		return nil, errors.New("new notifier: no receivers; give an Alertmanager or webhook URL")
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cfg.QueueSize, DefaultQueueSize)
	def(&cfg.BatchSize, DefaultBatchSize)
	defd(&cfg.MinBackoff, DefaultMinBackoff)
	defd(&cfg.MaxBackoff, DefaultMaxBackoff)
	defd(&cfg.Timeout, DefaultTimeout)
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.MinBackoff)
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{cfg: cfg, stop: make(chan struct{})}
	var names []string
	for _, rc := range cfg.Receivers {
		r, err := newReceiver(rc, n)
		if err != nil {
			return nil, fmt.Errorf("new notifier: %w", err)
		}
		if slices.Contains(names, rc.Name) {
			return nil, fmt.Errorf("new notifier: receiver %q is given twice; give each receiver its own name", rc.Name)
		}
		names = append(names, rc.Name)
		n.receivers = append(n.receivers, r)
	}
	n.m = metrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fermion_notify_alerts_sent_total", Help: "Alerts delivered to a receiver (re-sends included).",
		}, []string{"receiver"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fermion_notify_alerts_failed_total", Help: "Alerts in requests a receiver did not accept (each attempt counts).",
		}, []string{"receiver"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fermion_notify_alerts_dropped_total", Help: "Alerts given up on: pushed out of a full queue, or refused by the receiver as malformed.",
		}, []string{"receiver"}),
		queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fermion_notify_queue_length", Help: "Alerts waiting to be delivered to a receiver.",
		}, []string{"receiver"}),
	}
	for _, name := range names {
		// At 0 from the start, so a healthy receiver's panels show 0, not no data.
		n.m.sent.WithLabelValues(name)
		n.m.failed.WithLabelValues(name)
		n.m.dropped.WithLabelValues(name)
		n.m.queued.WithLabelValues(name)
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{n.m.sent, n.m.failed, n.m.dropped, n.m.queued} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("new notifier: register metrics: %w", err)
			}
		}
	}
	return n, nil
}

// Send queues alerts for every receiver and returns at once. A newer state of an alert
// (same labels) replaces one still queued.
func (n *Notifier) Send(alerts ...Alert) {
	for _, r := range n.receivers {
		r.enqueue(alerts)
	}
}

// Run delivers queued alerts until ctx is cancelled or Close is called, then returns
// once every receiver's goroutine has stopped. Alerts still queued are not sent. Call it
// once; Send may be called before, during and after it.
func (n *Notifier) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	defer close(done)
	n.mu.Lock()
	n.runDone = done
	n.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range n.receivers {
		wg.Go(func() { r.run(ctx) })
	}
	select {
	case <-ctx.Done():
	case <-n.stop:
	}
	cancel()
	wg.Wait()
	return nil
}

// Close stops Run and waits for it to return.
func (n *Notifier) Close() {
	n.stopOnce.Do(func() { close(n.stop) })
	n.mu.Lock()
	done := n.runDone
	n.mu.Unlock()
	if done != nil {
		<-done
	}
}

// receiver is one Receiver's queue and delivery loop. mu guards queue and active; it
// is a leaf lock.
type receiver struct {
	Receiver
	n        *Notifier
	endpoint string
	wake     chan struct{}

	mu     sync.Mutex
	queue  []Alert          // oldest first
	active map[string]Alert // firing alerts by fingerprint, for re-sends
}

func newReceiver(rc Receiver, n *Notifier) (*receiver, error) {
	if !nameRE.MatchString(rc.Name) {
		return nil, fmt.Errorf("receiver name %q: use 1 to 64 letters, digits, '-' or '_'", rc.Name)
	}
	u, err := url.Parse(rc.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("receiver %s: URL %q is not an http(s) address such as http://127.0.0.1:9093", rc.Name, rc.URL)
	}
	if rc.ResendInterval < 0 {
		return nil, fmt.Errorf("receiver %s: resend interval %s is negative; use 0 for the default", rc.Name, rc.ResendInterval)
	}
	r := &receiver{Receiver: rc, n: n, endpoint: rc.URL, wake: make(chan struct{}, 1), active: map[string]Alert{}}
	switch rc.Kind {
	case Alertmanager:
		r.endpoint = strings.TrimSuffix(rc.URL, "/") + "/api/v2/alerts"
		if r.ResendInterval == 0 {
			r.ResendInterval = DefaultResendInterval
		}
	case Webhook:
	default:
		return nil, fmt.Errorf("receiver %s: kind %q is not one of %s, %s", rc.Name, rc.Kind, Alertmanager, Webhook)
	}
	return r, nil
}

func (r *receiver) enqueue(alerts []Alert) {
	r.mu.Lock()
	for _, a := range alerts {
		fp := a.Fingerprint()
		if a.Resolved() {
			_, was := r.active[fp]
			delete(r.active, fp)
			// Alertmanager takes a resolution of an alert it never saw as a no-op, and
			// it may have seen it before a restart of ours; a webhook would show it
			// as news.
			if !was && r.Kind == Webhook {
				continue
			}
		} else {
			r.active[fp] = a
		}
		r.putLocked(a, fp)
	}
	r.trimLocked()
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// putLocked queues a, replacing a queued state of the same alert.
func (r *receiver) putLocked(a Alert, fp string) {
	for i := range r.queue {
		if r.queue[i].Fingerprint() == fp {
			r.queue = slices.Delete(r.queue, i, i+1)
			break
		}
	}
	r.queue = append(r.queue, a)
}

// trimLocked drops the oldest alerts past the queue's bound.
func (r *receiver) trimLocked() {
	if over := len(r.queue) - r.n.cfg.QueueSize; over > 0 {
		r.queue = slices.Delete(r.queue, 0, over)
		r.n.m.dropped.WithLabelValues(r.Name).Add(float64(over))
		r.n.cfg.Logger.Warn("alert queue full: dropped the oldest alerts", "receiver", r.Name, "dropped", over, "queue_size", r.n.cfg.QueueSize)
	}
	r.n.m.queued.WithLabelValues(r.Name).Set(float64(len(r.queue)))
}

// take removes up to n alerts from the front of the queue.
func (r *receiver) take(n int) []Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := min(n, len(r.queue))
	batch := slices.Clone(r.queue[:k])
	r.queue = slices.Delete(r.queue, 0, k)
	r.n.m.queued.WithLabelValues(r.Name).Set(float64(len(r.queue)))
	return batch
}

// putBack returns a failed batch to the front of the queue, except alerts whose newer
// state was queued meanwhile, and trims the queue to its bound.
func (r *receiver) putBack(batch []Alert) {
	r.mu.Lock()
	defer r.mu.Unlock()
	queued := map[string]bool{}
	for _, a := range r.queue {
		queued[a.Fingerprint()] = true
	}
	batch = slices.DeleteFunc(batch, func(a Alert) bool { return queued[a.Fingerprint()] })
	r.queue = append(batch, r.queue...)
	r.trimLocked()
}

// requeueActive queues every firing alert again (a re-send).
func (r *receiver) requeueActive() {
	r.mu.Lock()
	for fp, a := range r.active {
		r.putLocked(a, fp)
	}
	r.trimLocked()
	r.mu.Unlock()
}

func (r *receiver) run(ctx context.Context) {
	var resend <-chan time.Time
	if r.ResendInterval > 0 {
		t := time.NewTicker(r.ResendInterval)
		defer t.Stop()
		resend = t.C
	}
	cfg := &r.n.cfg
	backoff := time.Duration(0)
	for {
		batch := r.take(cfg.BatchSize)
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-r.wake:
			case <-resend:
				r.requeueActive()
			}
			continue
		}
		err := r.post(ctx, batch)
		if err == nil {
			r.n.m.sent.WithLabelValues(r.Name).Add(float64(len(batch)))
			backoff = 0
			continue
		}
		if ctx.Err() != nil {
			return
		}
		r.n.m.failed.WithLabelValues(r.Name).Add(float64(len(batch)))
		var perm permanentError
		if errors.As(err, &perm) {
			// The receiver refused the request itself: sending it again cannot help.
			r.n.m.dropped.WithLabelValues(r.Name).Add(float64(len(batch)))
			cfg.Logger.Error("alert receiver refused alerts: dropped them", "receiver", r.Name, "alerts", len(batch), "err", err)
			continue
		}
		r.putBack(batch)
		backoff = min(max(2*backoff, cfg.MinBackoff), cfg.MaxBackoff)
		cfg.Logger.Warn("alert delivery failed: will retry", "receiver", r.Name, "alerts", len(batch), "retry_in", backoff, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// permanentError is a refusal that retrying cannot fix (a 4xx other than 408 and 429).
type permanentError struct{ error }

func (r *receiver) post(ctx context.Context, batch []Alert) error {
	var body any
	switch r.Kind {
	case Alertmanager:
		body = r.alertmanagerBody(batch)
	case Webhook:
		body = webhookBody(r.Name, batch)
	}
	data, err := json.Marshal(body)
	if err != nil {
		return permanentError{fmt.Errorf("encode alerts for %s: %w", r.Name, err)}
	}
	ctx, cancel := context.WithTimeout(ctx, r.n.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.endpoint, bytes.NewReader(data))
	if err != nil {
		return permanentError{fmt.Errorf("post alerts to %s: %w", r.Name, err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "fermion-notify")
	resp, err := r.n.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("post alerts to %s: %w", r.Name, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	if resp.StatusCode/100 == 2 {
		return nil
	}
	err = fmt.Errorf("post alerts to %s: %s: %s", r.endpoint, resp.Status, strings.TrimSpace(string(msg)))
	if resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
		return permanentError{err}
	}
	return err
}

// alertmanagerBody is the v2 API's postable alerts. A firing alert's endsAt is four
// re-send intervals ahead, as Prometheus sets it: Alertmanager resolves the alert by
// itself if the re-sends stop (Fermion's leader gone), and re-sends keep moving it on.
func (r *receiver) alertmanagerBody(batch []Alert) []Alert {
	out := make([]Alert, len(batch))
	validUntil := r.n.cfg.Now().Add(4 * r.ResendInterval)
	for i, a := range batch {
		if !a.Resolved() {
			a.EndsAt = validUntil
		}
		out[i] = a
	}
	return out
}

// WebhookMessage is the JSON body webhook receivers get (docs/slo.md). Its alerts
// carry Alertmanager's field names, with a status each.
type WebhookMessage struct {
	// Version is the message format's version, "1".
	Version  string `json:"version"`
	Receiver string `json:"receiver"`
	// Status is "firing" when any alert in the message fires, else "resolved".
	Status string         `json:"status"`
	Alerts []WebhookAlert `json:"alerts"`
}

// WebhookAlert is one alert of a WebhookMessage.
type WebhookAlert struct {
	// Status is "firing" or "resolved".
	Status string `json:"status"`
	Alert
}

func webhookBody(receiver string, batch []Alert) WebhookMessage {
	m := WebhookMessage{Version: "1", Receiver: receiver, Status: "resolved"}
	for _, a := range batch {
		st := "resolved"
		if !a.Resolved() {
			st, m.Status = "firing", "firing"
		}
		m.Alerts = append(m.Alerts, WebhookAlert{Status: st, Alert: a})
	}
	return m
}

// Forget stops re-sending the firing alerts sent so far: another replica has taken
// over the SLO engine and re-sends them itself. Alerts still queued are delivered (a
// state this replica decided while it led; Alertmanager deduplicates a repeat).
func (n *Notifier) Forget() {
	for _, r := range n.receivers {
		r.mu.Lock()
		clear(r.active)
		r.mu.Unlock()
	}
}
