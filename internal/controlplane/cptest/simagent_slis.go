package cptest

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/sli"
)

// SendSLIs sends SLI summaries on the agent's own subject, as a real agent's SLI
// sender does, and returns the server's reply (console tests use it for traffic).
func (a *SimAgent) SendSLIs(ctx context.Context, sums []sli.Summary) (v1.SLIBatchReply, error) {
	var reply v1.SLIBatchReply
	b := v1.SLIBatch{SentAt: time.Now()}
	for _, s := range sums {
		b.Summaries = append(b.Summaries, sli.EncodeSummary(nil, s))
	}
	data, err := json.Marshal(b)
	if err != nil {
		return reply, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := a.nc.RequestWithContext(ctx, v1.SubjectSLIs(a.Name), data)
	if err != nil {
		return reply, fmt.Errorf("send SLIs from %s: %w", a.Name, err)
	}
	if err := json.Unmarshal(m.Data, &reply); err != nil {
		return reply, fmt.Errorf("send SLIs from %s: reply: %w", a.Name, err)
	}
	if reply.Error != nil {
		return reply, fmt.Errorf("send SLIs from %s: %w", a.Name, reply.Error)
	}
	return reply, nil
}
