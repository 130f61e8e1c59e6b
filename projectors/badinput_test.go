package projectors_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/examples/demo/projectors/seats"
	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/projectors"
	"github.com/reel-dev/reel/projectors/store"
	"github.com/reel-dev/reel/schemas"
)

// malform turns a good record into a bad one of kind i%6, keyed by an
// aggregate of its own (a parked aggregate parks its later events too;
// these keys have no good events).
func malform(good *kgo.Record, i int, rng *rand.Rand) *kgo.Record {
	r := &kgo.Record{Topic: good.Topic, Key: []byte(fmt.Sprintf("bad-%05d", i)), Value: append([]byte(nil), good.Value...)}
	r.Headers = append(r.Headers, good.Headers...)
	setHeader := func(k, v string) {
		for j := range r.Headers {
			if r.Headers[j].Key == k {
				r.Headers[j].Value = []byte(v)
				return
			}
		}
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	switch i % 6 {
	case 0: // garbage bytes
		r.Value = make([]byte, 10+rng.Intn(200))
		rng.Read(r.Value)
	case 1: // truncated Avro
		r.Value = r.Value[:len(r.Value)/2]
	case 2: // unknown type
		setHeader(schemas.HeaderType, "no.such.Event")
	case 3: // bad version header
		setHeader(schemas.HeaderVersion, "seven")
	case 4: // trailing bytes after a valid payload
		r.Value = append(r.Value, 1, 2, 3)
	case 5: // a huge length prefix right after the framing
		if len(r.Value) > 11 {
			r.Value = append(r.Value[:10:10], 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f)
		}
	}
	setHeader(schemas.HeaderAggregateID, string(r.Key))
	return r
}

// TestBadInputAtScale: 10,000 malformed records (six kinds) and a few
// oversized ones, mixed at random among good events in one topic, are
// projected from a backlog as fast as the projector goes. Every bad record
// is parked with reason decode, no good event is lost (the tables equal the
// fold), and the good events' rate is measured against a run of the same
// good events without bad ones (logged, not asserted: the machine is
// shared).
func TestBadInputAtScale(t *testing.T) {
	const (
		bad       = 10000
		oversized = 5
		good      = 20000
	)
	brokers := testenv.Kafka(t)
	rng := rand.New(rand.NewSource(11))
	evs := seatEvents(rng, 50, good-150)
	ctx := context.Background()
	cat, _ := events.Load()
	codec, _ := schemas.NewCodec(cat, schemas.WithBindings(events.Bindings()...))
	var goodRecs []*kgo.Record
	for _, ev := range evs {
		r, err := codec.Encode(ctx, ev)
		must(t, err)
		goodRecs = append(goodRecs, r)
	}

	run := func(name string, withBad bool) (rate float64, parked uint64) {
		ch := testenv.ClickHouse(t)
		topic := fmt.Sprintf("%s.bad%d.%s", seats.Topic, time.Now().UnixNano()%1e9, name)
		createTopic(t, brokers, topic, 4)
		var recs []*kgo.Record
		nbad := 0
		for i, g := range goodRecs {
			r := *g
			r.Topic = topic
			recs = append(recs, &r)
			if withBad && nbad < bad && (i%2 == 0 || len(goodRecs)-i <= 2*(bad-nbad)) {
				b := malform(&r, nbad, rng)
				recs = append(recs, b)
				nbad++
			}
		}
		if withBad {
			for i := range oversized {
				v := make([]byte, 900<<10)
				rng.Read(v)
				copy(v, goodRecs[i].Value[:10]) // a real framing, then noise
				recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf("huge-%d", i)), Value: v, Headers: goodRecs[i].Headers})
			}
			if nbad != bad {
				t.Fatalf("built %d bad records", nbad)
			}
			recs = append(recs, arrayBomb(t, codec, topic))
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.MaxBufferedRecords(100000))
		must(t, err)
		res := cl.ProduceSync(ctx, recs...)
		cl.Close()
		must(t, res.FirstErr())
		last := map[int32]int64{}
		for _, r := range res {
			last[r.Record.Partition] = max(last[r.Record.Partition], r.Record.Offset)
		}

		p := seats.Availability()
		for i := range p.Topics {
			p.Topics[i] = topic
		}
		reg := prometheus.NewRegistry()
		r, err := projectors.NewRunner(p, ch.Conn, codec, projectors.Brokers(brokers...),
			projectors.WithMetrics(projectors.NewMetrics(reg)),
			projectors.Logger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))),
			projectors.KafkaOpts(kgo.ClientID(t.Name()+name), kgo.FetchMaxPartitionBytes(8<<20)))
		must(t, err)
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- r.Run(rctx) }()
		waitApplied(t, ch, p.Name, topic, last, done)
		elapsed := time.Since(start)
		cancel()
		must(t, <-done)

		// Nothing lost: the projection equals the fold of the good events.
		rows, err := ch.Conn.Query(ctx, "SELECT conference_id, seat_type, reserved FROM seats_available")
		must(t, err)
		got := map[string]int64{}
		for rows.Next() {
			var c, st string
			var n int64
			must(t, rows.Scan(&c, &st, &n))
			got[c+"/"+st] = n
		}
		rows.Close()
		compareMaps(t, name+": seats reserved", foldSeats(evs), got)

		var decode, other uint64
		must(t, ch.Conn.QueryRow(ctx, "SELECT countIf(reason = 'decode'), countIf(reason != 'decode') FROM "+
			store.PhysName(p.Name, "parked", 1)).Scan(&decode, &other))
		if other != 0 {
			t.Fatalf("%s: %d parked with another reason than decode", name, other)
		}
		rate = float64(len(goodRecs)) / elapsed.Seconds()
		t.Logf("%s: %d good events projected in %s (%.0f good events/s), %d records parked", name, len(goodRecs), elapsed.Round(time.Millisecond), rate, decode)
		return rate, decode
	}

	cleanRate, cleanParked := run("clean", false)
	if cleanParked != 0 {
		t.Fatalf("clean run parked %d", cleanParked)
	}
	mixedRate, parked := run("mixed", true)
	if parked != bad+oversized+1 {
		t.Fatalf("parked %d records, want %d (%d malformed + %d oversized + the array bomb)", parked, bad+oversized+1, bad, oversized)
	}
	t.Logf("good events' rate: %.0f/s alone, %.0f/s among %d malformed and %d oversized records (%.0f%%)",
		cleanRate, mixedRate, bad, oversized, 100*mixedRate/cleanRate)
}

// arrayBomb is the record FuzzDecode found: a valid framing and envelope,
// then an array block whose item count made the decoder allocate
// terabytes — it killed the process before the codec bounded arrays.
func arrayBomb(t *testing.T, codec *schemas.Codec, topic string) *kgo.Record {
	t.Helper()
	r, err := codec.Encode(context.Background(), schemas.NewEvent(&events.StockReserved{OrderID: "o-1", ReservationID: "r",
		Lines: []events.StockLine{{ProductID: "p", Quantity: 1}}, ReservedAt: time.Now()}))
	must(t, err)
	const prefix = 10 + 4 + 2 // single-object header, "o-1", "r"
	r.Value = append(r.Value[:prefix:prefix], 0x01, 0x06, 0x02, 0x02, 0x00, 0x80, 0x84, 0xc6, 0xb9, 0xe6, 0x63)
	r.Topic = topic
	return r
}
