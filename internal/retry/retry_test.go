package retry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/reel-dev/reel/internal/chclient"
	"github.com/reel-dev/reel/internal/retry"
)

func TestDelayCappedWithJitter(t *testing.T) {
	p := retry.New(10*time.Millisecond, 80*time.Millisecond, nil)
	for attempt := range 40 {
		want := min(10*time.Millisecond<<min(attempt, 30), 80*time.Millisecond)
		seen := map[time.Duration]bool{}
		for range 50 {
			d := p.Delay(attempt)
			if d < want/2 || d > want {
				t.Fatalf("attempt %d: delay %s outside [%s, %s]", attempt, d, want/2, want)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Fatalf("attempt %d: no jitter (%v)", attempt, seen)
		}
	}
}

func TestDoStopsOnPermanentRetriesTransient(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := retry.NewMetrics(reg)
	p := retry.New(time.Millisecond, 2*time.Millisecond, m)
	calls := 0
	err := p.Do(context.Background(), "insert", func(context.Context) error {
		calls++
		switch calls {
		case 1:
			return &clickhouse.Exception{Code: 252, Name: "TOO_MANY_PARTS"}
		case 2:
			return &clickhouse.Exception{Code: 241, Name: "MEMORY_LIMIT_EXCEEDED"}
		}
		return &clickhouse.Exception{Code: 497, Name: "ACCESS_DENIED", Message: "not allowed"}
	}, nil)
	var pe *chclient.PermanentError
	if !errors.As(err, &pe) || pe.Code != 497 || pe.Op != "insert" || calls != 3 {
		t.Fatalf("err %v after %d calls; want a permanent ACCESS_DENIED after 3", err, calls)
	}
	if n := testutil.ToFloat64(m.Counter("insert", "transient", "252")); n != 1 {
		t.Fatalf("transient 252 counted %v", n)
	}
	if n := testutil.ToFloat64(m.Counter("insert", "permanent", "497")); n != 1 {
		t.Fatalf("permanent 497 counted %v", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err = p.Do(ctx, "insert", func(context.Context) error { return errors.New("connection reset") }, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("transient until the deadline: %v", err)
	}
}
