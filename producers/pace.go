package producers

import (
	"context"
	"time"
)

// Pacer hands out ticks at a steady rate for the demo services: Wait blocks
// until the next command may start. A rate <= 0 means no limit.
type Pacer struct {
	interval time.Duration
	next     time.Time
}

// NewPacer paces at rate per second.
func NewPacer(rate float64) *Pacer {
	p := &Pacer{next: time.Now()}
	if rate > 0 {
		p.interval = time.Duration(float64(time.Second) / rate)
	}
	return p
}

// Wait blocks until the next slot; not safe for concurrent use.
func (p *Pacer) Wait(ctx context.Context) error {
	if p.interval == 0 {
		return ctx.Err()
	}
	d := time.Until(p.next)
	p.next = p.next.Add(p.interval)
	if now := time.Now(); p.next.Before(now.Add(-time.Second)) {
		p.next = now // do not burst to catch up after a long stall
	}
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Counts is the number of events published per event type.
type Counts map[string]int

// Total is the sum over all types.
func (c Counts) Total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}
