package projectors_test

import (
	"fmt"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/reel-dev/reel/internal/testenv"
)

// TestExactlyOnceUnderFreezes freezes projector processes (SIGSTOP) past
// their group session timeout at random moments and thaws them (SIGCONT),
// as a GC pause, a stopped VM or a network partition would: the group gives
// the frozen member's partitions to another replica, and the thawed member
// carries on where it stopped — in the middle of a batch, with inserts it
// had not sent yet. A proxy slows every ClickHouse request so that most
// freezes land while a batch is being persisted. Some rounds freeze a
// member during its graceful shutdown instead, after it left the group but
// while it still flushes. Afterwards every table must equal an independent
// fold of the produced events: nothing lost, nothing duplicated. Without
// the fence (fence.go) the thawed members' batches land after the new
// owners read their positions.
//
// Knobs: REEL_FZ_ROUNDS (10), REEL_FZ_DELAY (ClickHouse request delay,
// 40ms), and those of startChaos.
func TestExactlyOnceUnderFreezes(t *testing.T) {
	if !testenv.RealKafka() && !testenv.Integration() && os.Getenv("REEL_EO_KFAKE") != "1" {
		t.Skip("needs a real Kafka (REEL_KAFKA_BROKERS), like TestExactlyOnceUnderKills; REEL_EO_KFAKE=1 to run it on kfake")
	}
	rounds := envInt("REEL_FZ_ROUNDS", 10)
	delay := envDuration("REEL_FZ_DELAY", 40*time.Millisecond)
	const session = 6 * time.Second // the broker's group.min.session.timeout.ms

	var proxy *slowProxy
	c := startChaos(t, "fz", func(dsn string) string {
		u, err := url.Parse(dsn)
		must(t, err)
		proxy = newSlowProxy(t, u.Host)
		proxy.delay.Store(int64(delay))
		u.Host = proxy.ln.Addr().String()
		return u.String()
	}, "-session-timeout", session.String())
	fl, rng := c.fl, c.rng
	for len(fl.living()) < 3 {
		fl.start()
	}
	shutdowns := 0
	for round := 0; round < rounds; round++ {
		time.Sleep(time.Second + time.Duration(rng.Int63n(int64(2*time.Second))))
		alive := fl.living()
		p := alive[rng.Intn(len(alive))]
		if rng.Intn(4) == 0 {
			// Frozen while shutting down: SIGTERM makes it flush and
			// leave; the freeze holds its last inserts back.
			fl.signal(p, syscall.SIGTERM)
			time.Sleep(time.Duration(rng.Int63n(int64(300 * time.Millisecond))))
			fl.freeze(p)
			time.Sleep(session + time.Duration(rng.Int63n(int64(2*time.Second))))
			fl.thaw(p)
			select {
			case <-p.done:
			case <-time.After(90 * time.Second):
				t.Fatalf("proc %d did not stop within 90s of SIGTERM", p.id)
			}
			shutdowns++
			fl.start()
		} else {
			fl.freeze(p)
			// Past the session timeout: the group has moved on.
			time.Sleep(session + time.Second + time.Duration(rng.Int63n(int64(3*time.Second))))
			fl.thaw(p)
		}
		if err := c.st.error(); err != nil {
			t.Fatal(err)
		}
	}
	// The catch-up runs at full speed.
	proxy.delay.Store(0)
	fenced := fl.grepLogs(`"fenced: rejoining the consumer group"`)
	killed := fl.grepLogs("stopped inserts of the partitions' earlier owners")
	drained := fl.grepLogs("waiting for inserts of the partitions' earlier owners")
	c.finish(fmt.Sprintf("freezes past the %s session timeout %d (of them during a graceful shutdown %d), ClickHouse requests delayed %s; members that found themselves fenced and rejoined %d, claims that killed an earlier owner's insert %d, drains that waited over 2s %d",
		session, fl.freezes, shutdowns, delay, fenced, killed, drained))
	if fl.freezes < rounds {
		t.Errorf("only %d freezes, want %d", fl.freezes, rounds)
	}
}
