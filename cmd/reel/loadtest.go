package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/reel-dev/reel/cli"
	"github.com/reel-dev/reel/loadtest"
)

// cmdLoadtest runs the load test against a Kafka cluster and a ClickHouse
// server (bash scripts/loadtest.sh starts both on a fresh machine):
//
//	reel loadtest -brokers 127.0.0.1:9092 -clickhouse http://127.0.0.1:8123/default
func cmdLoadtest(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == loadtest.ChildArg {
		return loadtest.ChildMain(ctx, args[1:])
	}
	fs := flag.NewFlagSet("reel loadtest", flag.ContinueOnError)
	brokers := fs.String("brokers", envOr("REEL_KAFKA_BROKERS", "127.0.0.1:9092"), "Kafka seed brokers, comma separated (env REEL_KAFKA_BROKERS)")
	dsn := fs.String("clickhouse", os.Getenv("REEL_CLICKHOUSE_DSN"), "ClickHouse DSN (env REEL_CLICKHOUSE_DSN)")
	db := fs.String("database", "reel_loadtest", "ClickHouse database of the run (dropped and recreated)")
	out := fs.String("out", "results", "results root; the run writes <out>/<timestamp>/")
	rate := fs.Float64("rate", 0, "events/s of the max phase; 0: as fast as possible")
	dur := fs.Duration("duration", 30*time.Second, "length of the max phase")
	events := fs.Int64("events", 0, "end the max phase after this many events instead of -duration")
	levels := fs.String("levels", "0.25,0.5,0.75", "freshness load levels, fractions of the max rate")
	levelTime := fs.Duration("level-duration", 15*time.Second, "length of each freshness level")
	aggs := fs.Int("aggregates", 10000, "aggregate slots (Zipf-distributed)")
	zipf := fs.Float64("zipf", 1.1, "Zipf exponent of the key distribution (> 1)")
	parts := fs.Int("partitions", 4, "partitions per topic")
	batch := fs.Int("batch", 5000, "projector batch size and raw insert batch size")
	memLimit := fs.Int64("memory-limit-mb", 256, "the projector processes' memory limit in MB, passed as a pod's (REEL_MEMORY_LIMIT: Go's soft limit 64 MiB below it, at most 90 % and at least half); 0: none")
	peer := fs.Bool("peer", true, "run the peer (ClickHouse Kafka engine inside the ClickHouse server)")
	watch := fs.String("watch", "", "name=pid,…: processes whose CPU the report accounts for per phase (scripts/loadtest.sh: clickhouse=…,kafka=…)")
	quiet := fs.Bool("q", false, "no progress display on stderr")
	scale := fs.Bool("scale", false, "also measure the scale curve (long): events/s and freshness vs partitions and replicas, replay cost vs history size")
	scaleParts := fs.String("scale-partitions", "1,4,12", "-scale: partitions per topic of the throughput steps")
	scaleReplicas := fs.String("scale-replicas", "1,2,3", "-scale: projector replicas (one machine), on the most partitions")
	scaleEvents := fs.Float64("scale-events", 1e6, "-scale: events produced flat out in each partitions/replicas step")
	scaleLevel := fs.Duration("scale-level-duration", 10*time.Second, "-scale: freshness level (half the step's rate) of each step")
	scaleHistory := fs.String("scale-history", "1e6,5e6,10e6", "-scale: history sizes replayed in full, ascending (events)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: reel loadtest [flags]\n\nProduces the demo event mix into fresh topics, runs the projector as a child\nprocess and measures produce rate, projector throughput, freshness, full\nreplay and cut-over, the raw Kafka and ClickHouse limits, a peer (also on\nequal work: an append-only projection), the projector's memory per phase and\nits CPU and allocation profiles; -scale adds the scale curve. Writes\n<out>/<timestamp>/report.md, results.json, plots and profiles (docs/loadtest.md).")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	lv, err := numbers("levels", *levels, func(v float64) float64 { return v })
	if err != nil {
		return err
	}
	toInt := func(v float64) int { return int(v) }
	toInt64 := func(v float64) int64 { return int64(v) }
	sp, err := numbers("scale-partitions", *scaleParts, toInt)
	if err != nil {
		return err
	}
	sr, err := numbers("scale-replicas", *scaleReplicas, toInt)
	if err != nil {
		return err
	}
	sh, err := numbers("scale-history", *scaleHistory, toInt64)
	if err != nil {
		return err
	}
	watched, err := pids(*watch)
	if err != nil {
		return err
	}
	cfg := loadtest.Config{
		Brokers: strings.Split(*brokers, ","), DSN: *dsn, Database: *db, Out: *out, Partitions: *parts,
		Aggregates: *aggs, ZipfS: *zipf, Rate: *rate, MaxDuration: *dur, MaxEvents: *events, Levels: lv,
		LevelTime: *levelTime, Batch: *batch, Peer: *peer, Log: os.Stderr, MemoryLimitMB: *memLimit,
		Scale: *scale, ScalePartitions: sp, ScaleReplicas: sr, ScaleEvents: int64(*scaleEvents),
		ScaleLevelTime: *scaleLevel, ScaleHistory: sh, Watch: watched,
	}
	if !*quiet {
		cfg.Progress = os.Stderr
	}
	dir, err := loadtest.Run(ctx, cfg)
	if dir != "" {
		fmt.Printf("report: %s/report.md\nresults: %s/results.json\n", dir, dir)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// pids parses -watch: name=pid pairs, comma separated.
func pids(list string) (map[string]int, error) {
	out := map[string]int{}
	if strings.TrimSpace(list) == "" {
		return out, nil
	}
	for _, kv := range strings.Split(list, ",") {
		name, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		pid, err := strconv.Atoi(v)
		if !ok || name == "" || err != nil || pid <= 0 {
			return nil, fmt.Errorf("%w: -watch %q: want name=pid,…", cli.ErrUsage, list)
		}
		out[name] = pid
	}
	return out, nil
}

// numbers parses flag name's comma-separated list of numbers (1e6 is a
// million) into T.
func numbers[T any](name, list string, conv func(float64) T) ([]T, error) {
	var out []T
	for _, s := range strings.Split(list, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return nil, fmt.Errorf("%w: -%s %q: %v", cli.ErrUsage, name, list, err)
		}
		out = append(out, conv(v))
	}
	return out, nil
}
