package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/reel-dev/reel/internal/testenv"
	"github.com/reel-dev/reel/projectors/projection"
)

// TestGuardLetsOnlyTheLatestClaimWrite: through a table's inbox and the
// checkpoints' inbox, only the partition's latest claim lands rows once its
// claimer has superseded the others, whichever order two racing claims
// were recorded and superseded in; other partitions and generations are
// untouched.
func TestGuardLetsOnlyTheLatestClaimWrite(t *testing.T) {
	ctx := context.Background()
	ch := testenv.ClickHouse(t)
	p := &projection.Projection{Name: "guarded", Topics: []string{"log"},
		Tables: []projection.Table{{Name: "log", Columns: []projection.Column{{Name: "v", Type: "UInt64"}}, OrderBy: "v"}}}
	l := NewLayout(p, 1)
	l2 := NewLayout(p, 2)
	for _, l := range []*Layout{l, l2} {
		if err := EnsureSchema(ctx, ch.Conn, l); err != nil {
			t.Fatal(err)
		}
	}
	log := l.Tables[l.ByUser[0]]
	k0, k1 := TopicPartition{Topic: "log", Partition: 0}, TopicPartition{Topic: "log", Partition: 1}
	claim := func(l *Layout, k TopicPartition, epoch uint64, supersede bool) {
		t.Helper()
		if err := RecordClaims(ctx, ch.Conn, l, "test", 1, []Claim{{TopicPartition: k, Epoch: epoch}}); err != nil {
			t.Fatal(err)
		}
		if supersede {
			if err := Supersede(ctx, ch.Conn, l); err != nil {
				t.Fatal(err)
			}
		}
	}
	// write inserts one row (v) through the inbox and one checkpoint, both
	// under epoch, and reports whether each landed.
	write := func(l *Layout, k TopicPartition, epoch uint64, v uint64) (row, ckpt bool) {
		t.Helper()
		pt := l.Tables[l.ByUser[0]]
		if err := ch.Conn.Exec(ctx, fmt.Sprintf("INSERT INTO %s (v, _topic, _partition, _offset, _event_ts, _epoch) VALUES (?, ?, ?, ?, ?, ?)", pt.Name+inboxSuffix),
			v, k.Topic, uint32(k.Partition), v, time.Now(), epoch); err != nil {
			t.Fatal(err)
		}
		stmt, args := CheckpointsInsert(l, k, int64(v), epoch)
		if err := ch.Conn.Exec(ctx, stmt, args...); err != nil {
			t.Fatal(err)
		}
		var n, c uint64
		if err := ch.Conn.QueryRow(ctx, "SELECT count() FROM "+pt.Name+" WHERE v = ?", v).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if err := ch.Conn.QueryRow(ctx, "SELECT count() FROM "+CheckpointsTable+" WHERE proj = ? AND generation = ? AND off = ?",
			p.Name, uint32(l.Generation), v).Scan(&c); err != nil {
			t.Fatal(err)
		}
		return n > 0, c > 0
	}
	expect := func(what string, l *Layout, k TopicPartition, epoch uint64, v uint64, want bool) {
		t.Helper()
		row, ckpt := write(l, k, epoch, v)
		if row != want || ckpt != want {
			t.Errorf("%s (epoch %x): row landed %v, checkpoint landed %v; want %v", what, epoch, row, ckpt, want)
		}
	}

	a, b, c := uint64(1)<<32|7, uint64(2)<<32|3, uint64(3)<<32|9
	claim(l, k0, a, true)
	expect("the only claim", l, k0, a, 1, true)
	claim(l, k0, b, true)
	expect("a claim superseded by a later one", l, k0, a, 2, false)
	expect("the later claim", l, k0, b, 3, true)

	// Racing claims, the higher recorded first: the lower one's claimer
	// reads both and supersedes its own.
	claim(l, k0, c+1, false)
	claim(l, k0, c, true)
	expect("the lower of two racing claims", l, k0, c, 4, false)
	expect("the higher of two racing claims", l, k0, c+1, 5, true)
	expect("a claim superseded twice over", l, k0, b, 6, false)

	// Other partitions and generations keep their own latest claims.
	claim(l, k1, a, true)
	expect("another partition's only claim (same epoch as a superseded one)", l, k1, a, 7, true)
	claim(l2, k0, a, true)
	expect("another generation's only claim", l2, k0, a, 8, true)

	var rows uint64
	if err := ch.Conn.QueryRow(ctx, "SELECT count() FROM "+log.Name).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 4 { // v = 1, 3, 5, 7
		t.Errorf("%s holds %d rows, want 4", log.Name, rows)
	}
}

// TestStaleTagged: a running insert is an earlier owner's when its
// log_comment holds a tag of the partition other than the claim's own, be
// it alone or among the tags of a group insert; tags of other partitions
// (10 is not 1) and the own tag are not.
func TestStaleTagged(t *testing.T) {
	ctx := context.Background()
	ch := testenv.ClickHouse(t)
	prefixes := []string{"reel-fence/p/g1/t/1@"}
	own := []string{"reel-fence/p/g1/t/1@77"}
	for _, c := range []struct {
		comment string
		stale   bool
	}{
		{"reel-fence/p/g1/t/1@5", true},
		{"reel-fence/p/g1/t/1@77", false},
		{"reel-fence/p/g1/t/1@775", true},
		{"reel-fence/p/g1/t/0@5 reel-fence/p/g1/t/1@5 reel-fence/p/g1/t/2@5", true},
		{"reel-fence/p/g1/t/0@5 reel-fence/p/g1/t/1@77 reel-fence/p/g1/t/2@5", false},
		{"reel-fence/p/g1/t/10@5 reel-fence/p/g1/t/11@5", false},
		{"reel-fence/p/g1/tt/1@5", false},
		{"", false},
	} {
		var got uint8
		if err := ch.Conn.QueryRow(ctx, "WITH ? AS lc SELECT "+staleTagged("lc"), c.comment, prefixes, own).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if (got == 1) != c.stale {
			t.Errorf("log_comment %q: stale %v, want %v", c.comment, got == 1, c.stale)
		}
	}
}
