package testenv_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/reel-dev/reel/internal/testenv"
)

// These tests pin what the rest of Reel relies on from its test Kafka, and
// run the same assertions against the real broker (REEL_KAFKA_BROKERS, from
// scripts/kafka.sh) and against kfake.

// uniqueName is a topic or group name for this test run. Real Kafka allows
// only [a-zA-Z0-9._-] in topic names (kfake is laxer), so subtest slashes go.
func uniqueName(t *testing.T, kind string) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			return r
		}
		return '-'
	}, strings.ToLower(t.Name()))
	return fmt.Sprintf("reel-testenv-%s-%s-%d", kind, name, time.Now().UnixNano())
}

func TestKafkaGroupConsumeCommitLag(t *testing.T) {
	const (
		n          = 1000
		partitions = 6
		keys       = 50
	)
	brokers := testenv.Kafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topic, group := uniqueName(t, "topic"), uniqueName(t, "group")

	admCl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	created, err := adm.CreateTopic(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = created.Err
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}

	// Produce: keyed like aggregates, values carry the per-key sequence so
	// the consumer can check per-key order.
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{
			Key:   fmt.Appendf(nil, "agg-%d", i%keys),
			Value: fmt.Appendf(nil, "%d", i/keys),
		}
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	usedPartitions := map[int32]bool{}
	for _, r := range recs {
		usedPartitions[r.Partition] = true
	}
	if len(usedPartitions) < 2 {
		t.Fatalf("50 keys landed on %d partition(s); want them spread", len(usedPartitions))
	}

	// Consume everything in a group and commit.
	cons, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
	)
	if err != nil {
		t.Fatal(err)
	}
	next := map[string]int{} // key -> next expected sequence
	seen := 0
	for seen < n {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", seen, n, err)
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.Fatalf("fetch %s/%d: %v", topic, p, err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			k, v := string(r.Key), string(r.Value)
			if want := fmt.Sprint(next[k]); v != want {
				t.Fatalf("key %s: got sequence %s, want %s (order or duplicates broken)", k, v, want)
			}
			next[k]++
			seen++
		})
	}
	if err := cons.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}
	cons.Close() // leave the group: the checks below see an Empty group

	// Committed offsets equal the end offsets, and the lag is zero.
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("list end offsets: %v", err)
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetch offsets: %v", err)
	}
	var sum int64
	ends.Each(func(o kadm.ListedOffset) {
		c, ok := committed.Lookup(topic, o.Partition)
		if !ok {
			if o.Offset != 0 {
				t.Errorf("partition %d: no committed offset, end offset %d", o.Partition, o.Offset)
			}
			return
		}
		if c.Err != nil || c.At != o.Offset {
			t.Errorf("partition %d: committed %d (err %v), end offset %d", o.Partition, c.At, c.Err, o.Offset)
		}
		sum += c.At
	})
	if sum != n {
		t.Errorf("committed offsets add up to %d, want %d", sum, n)
	}
	assertLag(ctx, t, adm, group, 0)

	// Ten more records: the lag of the (now empty) group shows them.
	more := make([]*kgo.Record, 10)
	for i := range more {
		more[i] = &kgo.Record{Key: []byte("late"), Value: []byte("x")}
	}
	if err := prod.ProduceSync(ctx, more...).FirstErr(); err != nil {
		t.Fatalf("produce more: %v", err)
	}
	prod.Close()
	assertLag(ctx, t, adm, group, 10)
}

func assertLag(ctx context.Context, t *testing.T, adm *kadm.Client, group string, want int64) {
	t.Helper()
	lags, err := adm.Lag(ctx, group)
	if err != nil {
		t.Fatalf("lag: %v", err)
	}
	l, ok := lags[group]
	if !ok {
		t.Fatalf("lag: group %s missing from the answer", group)
	}
	if err := l.Error(); err != nil {
		t.Fatalf("lag of %s: %v", group, err)
	}
	if got := l.Lag.Total(); got != want {
		t.Errorf("lag of %s (state %s) = %d, want %d", group, l.State, got, want)
	}
}

func TestKafkaSASL(t *testing.T) {
	brokers := testenv.KafkaSASL(t)
	realSASL := os.Getenv("REEL_KAFKA_SASL_BROKERS") != ""
	mechs := map[string]func(user, pass string) sasl.Mechanism{
		"PLAIN":         func(u, p string) sasl.Mechanism { return plain.Auth{User: u, Pass: p}.AsMechanism() },
		"SCRAM-SHA-256": func(u, p string) sasl.Mechanism { return scram.Auth{User: u, Pass: p}.AsSha256Mechanism() },
		"SCRAM-SHA-512": func(u, p string) sasl.Mechanism { return scram.Auth{User: u, Pass: p}.AsSha512Mechanism() },
	}
	for name, mech := range mechs {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()

			// Logged in, a client can create, produce and read back.
			cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.SASL(mech(testenv.SASLUser, testenv.SASLPassword)))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			topic := uniqueName(t, "sasl")
			created, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, topic)
			if err == nil {
				err = created.Err
			}
			if err != nil {
				t.Fatalf("create topic over SASL %s: %v", name, err)
			}
			rec := &kgo.Record{Topic: topic, Value: []byte("secret hello")}
			if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
				t.Fatalf("produce over SASL %s: %v", name, err)
			}
			cl.AddConsumeTopics(topic)
			var got []string
			for len(got) == 0 {
				fs := cl.PollFetches(ctx)
				if err := ctx.Err(); err != nil {
					t.Fatalf("consume over SASL %s: %v", name, err)
				}
				fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
			}
			if got[0] != "secret hello" {
				t.Fatalf("read %q, want %q", got[0], "secret hello")
			}

			// A wrong password is refused. Real Kafka answers with the typed
			// error; kfake just closes the connection.
			bad, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.SASL(mech(testenv.SASLUser, "wrong")),
				kgo.RequestRetries(0))
			if err != nil {
				t.Fatal(err)
			}
			defer bad.Close()
			err = bad.Ping(ctx)
			if err == nil {
				t.Fatalf("wrong password over %s was accepted", name)
			}
			if realSASL && !errors.Is(err, kerr.SaslAuthenticationFailed) {
				t.Fatalf("wrong password over %s: got %v, want %v", name, err, kerr.SaslAuthenticationFailed)
			}
		})
	}
}
