package projectors_test

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/reel-dev/reel/examples/demo/projectors/seats"
	"github.com/reel-dev/reel/examples/demo/projectors/shop"
	"github.com/reel-dev/reel/internal/testenv"
)

// envInt reads a tuning knob for a longer soak by hand, e.g.
// REEL_EO_KILLS=200 REEL_EO_DURATION=20m go test -run ExactlyOnce ./projectors/
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

var allProjections = []string{"orders", "order_saga", "sales", "seats", "event_log"}

// TestExactlyOnceUnderKills streams shop sagas and seat events while
// projector processes (every projection in each) are SIGKILLed at random
// moments, started and stopped, 1–3 at a time, so partitions move between
// members mid-batch. Afterwards one replica catches up and every table
// must equal an independent fold of the produced events: nothing lost,
// nothing duplicated.
//
// Knobs: REEL_EO_KILLS (20), REEL_EO_DURATION (50s), REEL_EO_RATE (events/s,
// 2500), REEL_EO_PARTITIONS (4), REEL_EO_SEED (time).
func TestExactlyOnceUnderKills(t *testing.T) {
	if !testenv.RealKafka() && !testenv.Integration() && os.Getenv("REEL_EO_KFAKE") != "1" {
		// Open finding: against kfake the group stalls after repeated
		// SIGKILLs (rebalances wait out the 60s rebalance timeout, a SIGTERM
		// during a join hangs as long) and the catch-up does not finish in
		// 3 minutes. Real Kafka (scripts/test.sh) passes. REEL_EO_KFAKE=1
		// runs it anyway.
		t.Skip("needs a real Kafka (REEL_KAFKA_BROKERS): against kfake the group stalls after repeated SIGKILLs; REEL_EO_KFAKE=1 to run it")
	}
	kills := envInt("REEL_EO_KILLS", 20)
	duration := envDuration("REEL_EO_DURATION", 50*time.Second)
	c := startChaos(t, "eo", nil, "-session-timeout", "6s")
	t.Logf("%d kills over %s", kills, duration)

	fl, rng := c.fl, c.rng
	killed, maxAlive := 0, 1
	for time.Since(c.begun) < duration || killed < kills {
		if time.Since(c.begun) > 4*duration {
			t.Fatalf("only %d kills after %s", killed, time.Since(c.begun))
		}
		// Space actions so that the kills spread over the duration, with
		// jitter: some land mid-batch, some mid-rebalance.
		gap := duration / time.Duration(kills+kills/2)
		time.Sleep(gap/2 + time.Duration(rng.Int63n(int64(gap))))
		alive := fl.living()
		switch x := rng.Intn(100); {
		case len(alive) == 0:
			fl.start()
		case x < 60 || killed < kills && time.Since(c.begun) > duration:
			fl.kill(alive[rng.Intn(len(alive))])
			killed++
			if len(alive) == 1 || rng.Intn(3) == 0 {
				fl.start()
			}
		case x < 72 && len(alive) > 1:
			fl.term(alive[rng.Intn(len(alive))], 60*time.Second)
		case len(alive) < 3:
			fl.start()
		}
		maxAlive = max(maxAlive, len(fl.living()))
		if err := c.st.error(); err != nil {
			t.Fatal(err)
		}
	}
	c.finish(fmt.Sprintf("kills survived %d (SIGKILL), SIGTERM stops %d, processes started %d, max %d alive", fl.kills, fl.terms, fl.starts, maxAlive))
	if fl.kills < kills {
		t.Errorf("only %d kills, want %d", fl.kills, kills)
	}
}

// chaos is a stream of shop sagas and seat events projected by a fleet of
// projector processes (every projection in each) that a test disturbs;
// finish lets one replica catch up and compares every table with an
// independent fold of the produced events.
type chaos struct {
	t                     *testing.T
	ch                    testenv.CH
	fl                    *fleet
	st                    *stream
	rng                   *rand.Rand
	stop                  chan struct{}
	rates                 *rateWatch
	shopTopic, seatsTopic string
	begun                 time.Time
}

// startChaos starts the stream and the first replica. via, if not nil,
// maps the test's ClickHouse DSN to the one the projectors use (a proxy);
// args are more projectorproc flags. Knobs: REEL_EO_RATE (events/s, 2500), REEL_EO_PARTITIONS (4),
// REEL_EO_SEED (time), REEL_EO_DECLARED=1 (run the declared demo).
func startChaos(t *testing.T, name string, via func(dsn string) string, args ...string) *chaos {
	brokers := testenv.Kafka(t)
	ch := testenv.ClickHouse(t)
	bin := buildProjectorProc(t)
	dsn := ch.DSN
	if via != nil {
		dsn = via(dsn)
	}
	rate := envInt("REEL_EO_RATE", 2500)
	partitions := envInt("REEL_EO_PARTITIONS", 4)
	seed := int64(envInt("REEL_EO_SEED", int(time.Now().UnixNano()%1e9)))
	t.Logf("seed %d (REEL_EO_SEED), %d events/s, %d partitions per topic", seed, rate, partitions)

	run := fmt.Sprintf("%s%d", name, time.Now().UnixNano()%1e9)
	suffix := "." + run
	c := &chaos{t: t, ch: ch, rng: rand.New(rand.NewSource(seed)), stop: make(chan struct{}),
		shopTopic: shop.Topic + suffix, seatsTopic: seats.Topic + suffix}
	createTopic(t, brokers, c.shopTopic, int32(partitions))
	createTopic(t, brokers, c.seatsTopic, int32(partitions))

	if os.Getenv("REEL_EO_DECLARED") == "1" {
		// The declared demo (examples/projections) instead of the Go
		// projections of the same names; the folds are the same.
		dir, err := filepath.Abs("../examples/projections")
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, "-declared", dir)
		t.Logf("declared projections from %s", dir)
	}
	c.fl = newFleet(t, bin, append([]string{
		"-brokers", strings.Join(brokers, ","), "-dsn", dsn,
		"-projections", strings.Join(allProjections, ","),
		"-batch", "2000", "-flush", "300ms", "-retry-max", "1s",
		"-topic-suffix", suffix, "-group-suffix", suffix}, args...)...)
	// The first replica creates the tables; the stream starts with it.
	c.fl.start()
	c.st = startStream(t, brokers, newWorld(seed, run, 2000, 400), suffix, rate, c.stop)
	c.rates = watchRate(context.Background(), ch.Conn)
	c.begun = time.Now()
	return c
}

// finish ends the stream, lets one replica catch up, stops the fleet and
// compares every table with the fold. what describes the disturbances.
func (c *chaos) finish(what string) {
	t, fl, st := c.t, c.fl, c.st
	close(c.stop)
	if err := st.wait(); err != nil {
		t.Fatal(err)
	}
	streamed := st.finish.Sub(st.start)

	// One replica finishes the job.
	alive := fl.living()
	if len(alive) == 0 {
		fl.start()
	}
	for _, p := range alive[min(1, len(alive)):] {
		fl.term(p, 60*time.Second)
	}
	want := map[string]map[string]map[int32]int64{}
	for _, p := range []string{"orders", "order_saga", "sales"} {
		want[p] = st.offsets(c.shopTopic)
	}
	want["seats"] = st.offsets(c.seatsTopic)
	want["event_log"] = st.offsets(c.shopTopic, c.seatsTopic)
	ctx := context.Background()
	catchUp := waitAllApplied(t, ctx, appliedCheck(c.ch.Conn, 1, want), 3*time.Minute)
	c.rates.stop()
	for _, p := range fl.living() {
		fl.term(p, 60*time.Second)
	}
	if cr := fl.crashes(); len(cr) > 0 {
		t.Errorf("projector processes crashed: %v", cr)
	}

	st.mu.Lock()
	evs := append([]produced(nil), st.evs...)
	st.mu.Unlock()
	f := foldEvents(evs)
	checks := compareAll(t, c.ch.Conn, f, 1, allProjections...)
	rows, lost, dup, wrong := sumChecks(checks)
	t.Logf("SUMMARY %s; events produced %d in %s (%.0f/s); %d orders, %d conferences",
		what, len(evs), streamed.Round(time.Millisecond), float64(len(evs))/streamed.Seconds(), len(f.orders), len(f.confs))
	t.Logf("SUMMARY event_log applied %.0f events/s on average during the stream (peak %.0f/s over 2s); catch-up after the stream %s",
		c.rates.avg(st.start, st.finish), c.rates.peak(), catchUp.Round(time.Millisecond))
	t.Logf("SUMMARY rows compared %d across %d tables/views: lost %d, duplicated %d, wrong %d", rows, len(checks), lost, dup, wrong)
}

// rateWatch samples how many events the event_log projection has applied.
type rateWatch struct {
	mu      sync.Mutex
	samples []rateSample
	done    chan struct{}
	once    sync.Once
}

type rateSample struct {
	at time.Time
	n  uint64
}

func watchRate(ctx context.Context, conn driver.Conn) *rateWatch {
	w := &rateWatch{done: make(chan struct{})}
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-w.done:
				return
			case <-tick.C:
			}
			var n uint64
			if err := conn.QueryRow(ctx, "SELECT count() FROM event_log").Scan(&n); err != nil {
				continue
			}
			w.mu.Lock()
			w.samples = append(w.samples, rateSample{time.Now(), n})
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *rateWatch) stop() { w.once.Do(func() { close(w.done) }) }

// avg is the applied rate between the samples nearest to from and to.
func (w *rateWatch) avg(from, to time.Time) float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var a, b *rateSample
	for i := range w.samples {
		s := &w.samples[i]
		if a == nil && !s.at.Before(from) {
			a = s
		}
		if !s.at.After(to) {
			b = s
		}
	}
	if a == nil || b == nil || !b.at.After(a.at) {
		return 0
	}
	return float64(b.n-a.n) / b.at.Sub(a.at).Seconds()
}

// peak is the highest rate over two consecutive sample intervals.
func (w *rateWatch) peak() float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	best := 0.0
	for i := 2; i < len(w.samples); i++ {
		a, b := w.samples[i-2], w.samples[i]
		if r := float64(b.n-a.n) / b.at.Sub(a.at).Seconds(); r > best {
			best = r
		}
	}
	return best
}
