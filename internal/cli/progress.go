package cli

import (
	"fmt"
	"io"
	"sync"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Progress of a module's bytes for push, pull and deploy, on standard error so that
// standard output stays the results a script reads. On a terminal one line is redrawn
// in place; elsewhere (a pipe, CI logs) a line is printed at each quarter, so a log
// shows that a large transfer moves without filling up.

// progressMin is the smallest layer that gets a progress report: below it a transfer
// is over before anyone could read one.
const progressMin = 1 << 20

// progressRedraw bounds how often a terminal line is redrawn.
const progressRedraw = 100 * time.Millisecond

// newProgress returns an oci.Client Progress func that prints to w.
func newProgress(w io.Writer) func(op string, desc ocispec.Descriptor) func(int64) {
	tty := isTerminalOut(w)
	return func(op string, desc ocispec.Descriptor) func(int64) {
		if desc.Size < progressMin {
			return func(int64) {}
		}
		p := &progressLine{w: w, tty: tty, verb: map[string]string{"push": "pushing", "pull": "pulling"}[op],
			what: "module " + shortDigest(desc.Digest.String()), total: desc.Size, start: time.Now(), now: time.Now}
		if p.verb == "" {
			p.verb = op
		}
		return p.report
	}
}

// progressLine reports one transfer. report may be called from the transfer's
// goroutine only, but mu keeps a stray concurrent call from tearing a line.
type progressLine struct {
	mu         sync.Mutex
	w          io.Writer
	tty        bool
	verb, what string
	total      int64
	start      time.Time
	now        func() time.Time
	drawn      time.Time // last terminal redraw
	quarter    int64     // last quarter printed (pipe)
	finished   bool
}

func (p *progressLine) report(done int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if done == 0 { // a (re)start: shown at once
		p.finished, p.quarter, p.drawn = false, 0, time.Time{}
	}
	if p.finished {
		return
	}
	end := done >= p.total
	if p.tty {
		now := p.now()
		if !end && now.Sub(p.drawn) < progressRedraw {
			return
		}
		p.drawn = now
		fmt.Fprintf(p.w, "\r\033[K%s %s: %s", p.verb, p.what, p.amount(done))
		if end {
			fmt.Fprintf(p.w, " in %s\n", p.elapsed())
			p.finished = true
		}
		return
	}
	q := done * 4 / p.total
	if end {
		fmt.Fprintf(p.w, "%s %s: %s in %s\n", p.verb, p.what, p.amount(done), p.elapsed())
		p.finished = true
		return
	}
	if q > p.quarter {
		p.quarter = q
		fmt.Fprintf(p.w, "%s %s: %s\n", p.verb, p.what, p.amount(done))
	}
}

func (p *progressLine) amount(done int64) string {
	return fmt.Sprintf("%s / %s (%d%%)", formatBytes(done), formatBytes(p.total), done*100/p.total)
}

func (p *progressLine) elapsed() string {
	return p.now().Sub(p.start).Round(time.Millisecond).String()
}
