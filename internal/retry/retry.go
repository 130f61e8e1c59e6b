// Package retry is Reel's one retry policy: capped exponential backoff with
// jitter, where chclient.Classify decides what is retried. Every loop that
// retries ClickHouse goes through a Policy.
//
//	p := retry.New(100*time.Millisecond, 10*time.Second, metrics)
//	err := p.Do(ctx, "claim partitions", func(ctx context.Context) error { … }, nil)
//	// err is a *chclient.PermanentError, ctx.Err(), or nil
package retry

import (
	"context"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reel-dev/reel/internal/chclient"
)

// Policy is capped exponential backoff with jitter. The zero value is not
// usable; build one with New.
type Policy struct {
	// Min is the first delay, Max the cap. Default 100ms and 10s.
	Min, Max time.Duration
	// Jitter is the fraction of each delay that is random (0..1), so
	// that members retrying the same outage spread out. Default 0.5.
	Jitter float64
	// Metrics counts retries and give-ups; nil counts nothing.
	Metrics *Metrics
}

// New returns the policy with backoff from minD to maxD.
func New(minD, maxD time.Duration, m *Metrics) Policy {
	return Policy{Min: minD, Max: maxD, Jitter: 0.5, Metrics: m}
}

// Delay is the wait before retry number attempt (0-based): Min·2^attempt
// capped at Max, of which the Jitter fraction is drawn at random.
func (p Policy) Delay(attempt int) time.Duration {
	minD, maxD := p.Min, p.Max
	if minD <= 0 {
		minD = 100 * time.Millisecond
	}
	if maxD < minD {
		maxD = minD
	}
	d := minD << min(attempt, 30)
	if d > maxD || d <= 0 {
		d = maxD
	}
	if j := min(max(p.Jitter, 0), 1); j > 0 {
		fixed := time.Duration(float64(d) * (1 - j))
		d = fixed + time.Duration(rand.Int64N(int64(d-fixed)+1))
	}
	return d
}

// Sleep waits Delay(attempt) or until ctx ends (its error).
func (p Policy) Sleep(ctx context.Context, attempt int) error {
	t := time.NewTimer(p.Delay(attempt))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Observe classifies err met by op at attempt, counts it and says whether
// to retry. A permanent error comes back as a *chclient.PermanentError.
func (p Policy) Observe(op string, err error) (retry bool, out error) {
	c := chclient.Classify(err)
	if p.Metrics != nil && c != chclient.Canceled {
		code, _ := chclient.Code(err)
		p.Metrics.errors.WithLabelValues(op, c.String(), strconv.Itoa(int(code))).Inc()
	}
	switch c {
	case chclient.Permanent:
		return false, chclient.AsPermanent(op, err)
	case chclient.Canceled:
		return false, err
	}
	return true, err
}

// Do runs fn until it succeeds, meets a permanent error (returned as a
// *chclient.PermanentError), or ctx ends (ctx.Err()). onRetry, when not
// nil, is told of every transient failure before the wait.
func (p Policy) Do(ctx context.Context, op string, fn func(context.Context) error, onRetry func(attempt int, err error)) error {
	for attempt := 0; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		retry, err := p.Observe(op, err)
		if !retry {
			return err
		}
		if onRetry != nil {
			onRetry(attempt, err)
		}
		if err := p.Sleep(ctx, attempt); err != nil {
			return err
		}
	}
}

// Metrics counts classified ClickHouse errors met by retry loops.
type Metrics struct {
	errors *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{errors: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "reel_clickhouse_errors_total",
		Help: "ClickHouse errors met by retry loops, by operation, class (transient: retried with backoff; permanent: not retried) and ClickHouse error code (0: not a server exception).",
	}, []string{"op", "class", "code"})}
	if reg != nil {
		reg.MustRegister(m.errors)
	}
	return m
}

// Counter is the counter of op's errors of class and code (for tests and
// dashboards' sake).
func (m *Metrics) Counter(op, class, code string) prometheus.Counter {
	return m.errors.WithLabelValues(op, class, code)
}
