package projectors_test

import (
	"context"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/examples/demo/projectors/seats"
	"github.com/reel-dev/reel/examples/demo/projectors/shop"
	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/projectors"
	"github.com/reel-dev/reel/projectors/store"
	"github.com/reel-dev/reel/schemas"
)

// TestTopicRecreatedUnderStaleMember deletes and re-creates a topic while a
// frozen member still holds records of the old one, and starts a new member
// on the same generation. The new member must refuse the new incarnation
// (the generation's rows are the old topic's, whose offsets the new one
// reuses) and say so; the thawed member's records must not land; the
// generation holds exactly a prefix of the old topic per partition, nothing
// twice, nothing of the new topic. A rebuild (generation 2) then projects
// the new topic completely.
func TestTopicRecreatedUnderStaleMember(t *testing.T) {
	brokers := testenv.Kafka(t)
	ch := testenv.ClickHouse(t)
	bin := buildProjectorProc(t)
	ctx := context.Background()
	suffix := fmt.Sprintf(".rc%d", time.Now().UnixNano()%1e9)
	seatsTopic, shopTopic := seats.Topic+suffix, shop.Topic+suffix
	createTopic(t, brokers, seatsTopic, 2)
	createTopic(t, brokers, shopTopic, 1)

	fl := newFleet(t, bin, "-brokers", strings.Join(brokers, ","), "-dsn", ch.DSN, "-projections", "event_log",
		"-batch", "200", "-flush", "100ms", "-topic-suffix", suffix, "-group-suffix", suffix)
	stale := fl.start()

	// The old topic: a first part projected, then a stream during which the
	// member is frozen.
	rng := rand.New(rand.NewSource(1))
	old := producePositions(t, brokers, seatsTopic, seatEvents(rng, 20, 2000))
	waitApplied(t, ch, "event_log", seatsTopic, lastOffsets(old), nil)
	done := make(chan struct{})
	more := make(chan []producedAt, 1)
	go func() {
		var out []producedAt
		for i := 0; ; i++ {
			select {
			case <-done:
				more <- out
				return
			default:
			}
			out = append(out, producePositions(t, brokers, seatsTopic, seatEvents(rand.New(rand.NewSource(int64(i+2))), 5, 200))...)
		}
	}()
	time.Sleep(1500 * time.Millisecond)
	fl.freeze(stale)
	close(done)
	old = append(old, <-more...)

	// The topic is deleted and created again; the new one gets events.
	adm := kadm.NewClient(mustClient(t, brokers))
	if _, err := adm.DeleteTopics(ctx, seatsTopic); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() error {
		_, err := adm.CreateTopic(ctx, 2, 1, nil, seatsTopic)
		return err
	})
	fresh := producePositions(t, brokers, seatsTopic, seatEvents(rand.New(rand.NewSource(99)), 10, 500))

	// A new member of the same generation takes the partitions over once the
	// frozen one's session timed out, and refuses the new incarnation.
	fl.start()
	waitFor(t, 60*time.Second, func() error {
		if fl.grepLogs("was deleted and created again") == 0 {
			return fmt.Errorf("no member reported the re-created topic yet")
		}
		return nil
	})
	// The stale member wakes up with its batch and fetched records.
	fl.thaw(stale)
	time.Sleep(5 * time.Second)

	pos := eventLogRows(t, ch, 1, seatsTopic)
	byPos := map[[2]int64]string{}
	for _, e := range old {
		byPos[[2]int64{int64(e.partition), e.offset}] = e.id
	}
	freshIDs := map[string]bool{}
	for _, e := range fresh {
		freshIDs[e.id] = true
	}
	maxOff := map[int32]int64{}
	rows := 0
	for _, r := range pos {
		rows++
		if freshIDs[r.id] {
			t.Errorf("generation 1 holds event %s of the re-created topic at %d/%d", r.id, r.partition, r.offset)
			continue
		}
		if want := byPos[[2]int64{int64(r.partition), r.offset}]; want != r.id {
			t.Errorf("row at %d/%d is event %q, the old topic had %q there", r.partition, r.offset, r.id, want)
		}
		maxOff[r.partition] = max(maxOff[r.partition], r.offset)
	}
	seen := map[[2]int64]int{}
	for _, r := range pos {
		seen[[2]int64{int64(r.partition), r.offset}]++
	}
	for k, n := range seen {
		if n > 1 {
			t.Errorf("offset %d/%d stored %d times", k[0], k[1], n)
		}
	}
	prefix := 0
	for p, hi := range maxOff {
		for o := int64(0); o <= hi; o++ {
			if seen[[2]int64{int64(p), o}] == 0 {
				t.Errorf("generation 1 lacks old offset %d/%d below its position %d", p, o, hi)
				break
			}
		}
		prefix += int(hi + 1)
	}

	// The rebuild's generation projects the new topic, all of it.
	ip := runInProcess(t, ch.Conn, brokers, suffix, []string{"event_log"}, projectors.Generation(2), projectors.WithoutViews(),
		projectors.KafkaOpts(kgo.ConsumerGroup(store.Group("event_log", 2)+suffix)))
	waitAppliedGen(t, ch, "event_log", 2, seatsTopic, lastOffsets(fresh))
	ip.stop()
	got := eventLogRows(t, ch, 2, seatsTopic)
	ids := map[string]int{}
	for _, r := range got {
		ids[r.id]++
	}
	for _, e := range fresh {
		if ids[e.id] != 1 {
			t.Errorf("generation 2 holds event %s of the new topic %d times", e.id, ids[e.id])
		}
	}
	if len(got) != len(fresh) {
		t.Errorf("generation 2 holds %d rows of the new topic, %d events were produced", len(got), len(fresh))
	}
	t.Logf("SUMMARY old topic: %d events produced, generation 1 holds %d rows (a gapless prefix of %d per partition: %v), none twice, none of the new topic; new topic: %d events, refused by generation 1, projected by generation 2 (%d rows)",
		len(old), rows, prefix, maxOff, len(fresh), len(got))
}

type producedAt struct {
	id        string
	partition int32
	offset    int64
}

func producePositions(t *testing.T, brokers []string, topic string, evs []schemas.Event) []producedAt {
	t.Helper()
	codec := newCodec(t)
	cl := mustClient(t, brokers)
	var recs []*kgo.Record
	ids := map[*kgo.Record]string{}
	for _, ev := range evs {
		r, err := codec.Encode(context.Background(), ev)
		must(t, err)
		r.Topic = topic
		recs = append(recs, r)
		ids[r] = ev.ID
	}
	// Results come in the order the produce requests finished.
	res := cl.ProduceSync(context.Background(), recs...)
	must(t, res.FirstErr())
	out := make([]producedAt, len(res))
	for i, r := range res {
		out[i] = producedAt{ids[r.Record], r.Record.Partition, r.Record.Offset}
	}
	return out
}

func lastOffsets(evs []producedAt) map[int32]int64 {
	out := map[int32]int64{}
	for _, e := range evs {
		out[e.partition] = max(out[e.partition], e.offset)
	}
	return out
}

func mustClient(t *testing.T, brokers []string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	must(t, err)
	t.Cleanup(cl.Close)
	return cl
}

func waitFor(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func waitAppliedGen(t *testing.T, ch testenv.CH, proj string, gen int, topic string, last map[int32]int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	must(t, store.WaitApplied(ctx, ch.Conn, proj, gen, map[string]map[int32]int64{topic: last}, 100*time.Millisecond))
}

type logRow struct {
	id        string
	partition int32
	offset    int64
}

// eventLogRows reads event_log's generation table directly (the view
// follows the live generation).
func eventLogRows(t *testing.T, ch testenv.CH, gen int, topic string) []logRow {
	t.Helper()
	var out []logRow
	query(t, context.Background(), ch.Conn, fmt.Sprintf("SELECT event_id, _partition, _offset FROM %s WHERE _topic = '%s'",
		store.PhysName("event_log", "event_log", gen), topic), func(scan func(...any) error) error {
		var r logRow
		var p uint32
		var o uint64
		if err := scan(&r.id, &p, &o); err != nil {
			return err
		}
		r.partition, r.offset = int32(p), int64(o)
		out = append(out, r)
		return nil
	})
	return out
}
