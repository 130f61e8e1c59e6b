package loadtest

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// peer runs ClickHouse's own Kafka table engine inside the same embedded
// ClickHouse (libchdb behind reel-chdb) on the run's shop.orders topic:
// ENGINE = Kafka with the AvroConfluent format (the same schema registry)
// and a materialized view into a MergeTree table carrying the same
// position columns as Reel's tables. It is a sink, not a projection: no
// per-aggregate state and no exactly-once, so it bounds what a plain
// Kafka → ClickHouse copy of the topic costs on this machine.
//
// clickhouse_sinker (housepower) was the other candidate: it speaks
// ClickHouse's HTTP protocol too, but its parsers are JSON and CSV only,
// so it cannot read an Avro topic.
func (r *run) peer(ctx context.Context) {
	r.res.Peer = Peer{Name: "ClickHouse Kafka table engine (in libchdb, via reel-chdb)",
		What:    "Kafka engine, AvroConfluent format, materialized view into MergeTree(order_id, positions); no state, no exactly-once",
		Skipped: []string{"clickhouse_sinker: parsers are json/fastjson/gjson/csv only (no Avro), so it cannot read the same topic"}}
	topic := r.prefix + "shop.orders"
	ends, err := kadm.NewClient(r.kcl).ListEndOffsets(ctx, topic)
	if err != nil {
		r.res.Peer.Reason = err.Error()
		return
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	stmts := []string{
		fmt.Sprintf(`CREATE TABLE peer_queue (order_id String) ENGINE = Kafka SETTINGS
  kafka_broker_list = '%s', kafka_topic_list = '%s', kafka_group_name = 'reel-loadtest-peer-%s',
  kafka_format = 'AvroConfluent', format_avro_schema_registry_url = '%s', kafka_num_consumers = 1,
  kafka_max_block_size = %d, kafka_flush_interval_ms = 200, kafka_thread_per_consumer = 1`,
			strings.Join(r.cfg.PeerBrokers, ","), topic, r.prefix, r.regURL, r.cfg.Batch*4),
		`CREATE TABLE peer_orders (order_id String, _topic LowCardinality(String), _partition UInt32, _offset UInt64,
  _event_ts DateTime64(3, 'UTC')) ENGINE = MergeTree ORDER BY (order_id, _offset)`,
		`CREATE MATERIALIZED VIEW peer_mv TO peer_orders AS SELECT order_id, _topic, toUInt32(_partition) AS _partition,
  _offset, _timestamp_ms AS _event_ts FROM peer_queue`,
	}
	for _, s := range stmts {
		if err := r.conn.Exec(ctx, s); err != nil {
			r.res.Peer.Reason = fmt.Sprintf("%s: %v", strings.SplitN(s, "(", 2)[0], err)
			r.progress("peer: %s", r.res.Peer.Reason)
			return
		}
	}
	defer func() {
		for _, s := range []string{"DROP TABLE IF EXISTS peer_mv", "DROP TABLE IF EXISTS peer_queue"} {
			_ = r.conn.Exec(context.Background(), s)
		}
	}()
	t0 := time.Now()
	var first time.Time
	var firstN uint64
	limit := 3 * time.Minute
	for time.Since(t0) < limit {
		var n uint64
		if err := r.conn.QueryRow(ctx, "SELECT count() FROM peer_orders").Scan(&n); err != nil {
			r.res.Peer.Reason = err.Error()
			return
		}
		now := time.Now()
		if n > 0 && first.IsZero() {
			first, firstN = now, n
		}
		if int64(n) >= total {
			r.res.Peer.Ran = true
			r.res.Peer.Rate = rate(int64(n-firstN), now.Sub(first))
			if n == firstN {
				r.res.Peer.Rate = rate(int64(n), now.Sub(t0))
			}
			r.progress("peer: %d rows in %.2fs = %.0f/s", n, r.res.Peer.Rate.Seconds, r.res.Peer.Rate.PerSec)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
	var errText string
	_ = r.conn.QueryRow(ctx, "SELECT arrayStringConcat(exceptions.text, ' | ') FROM system.kafka_consumers WHERE table = 'peer_queue' LIMIT 1").Scan(&errText)
	r.res.Peer.Reason = fmt.Sprintf("the Kafka engine did not copy the topic (%d events) within %s; consumer errors: %s", total, limit, errText)
	r.progress("peer: %s", r.res.Peer.Reason)
}
