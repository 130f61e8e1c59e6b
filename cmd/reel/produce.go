package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/reel-dev/reel/cli"
	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/examples/demo/producers/seats"
	"github.com/reel-dev/reel/examples/demo/producers/shop"
	"github.com/reel-dev/reel/producers"
	"github.com/reel-dev/reel/schemas"
)

// cmdProduce: reel produce seats|shop — run a demo service.
func cmdProduce(ctx context.Context, args []string) error {
	if len(args) == 0 || (args[0] != "seats" && args[0] != "shop") {
		return fmt.Errorf("%w: reel produce seats|shop [flags]", cli.ErrUsage)
	}
	domain := args[0]
	fset := flag.NewFlagSet("produce "+domain, flag.ContinueOnError)
	brokers := fset.String("brokers", envOr("REEL_KAFKA_BROKERS", "127.0.0.1:9092"), "Kafka seed brokers, comma separated (env REEL_KAFKA_BROKERS)")
	registry := fset.String("registry", os.Getenv("REEL_SCHEMA_REGISTRY"), "Schema Registry URL: Confluent framing; empty: single-object encoding")
	rate := fset.Float64("rate", 0, "commands (seats) or orders (shop) per second; 0: the demo's default, <0: unlimited")
	count := fset.Int("count", 0, "stop after this many commands/orders; 0: until -duration or Ctrl-C")
	duration := fset.Duration("duration", 0, "stop after this long; 0: no limit")
	aggregates := fset.Int("aggregates", 0, "seats: conferences (default 3); shop: products (default 20)")
	seatsPer := fset.Int64("seats-per-type", 0, "seats: seats per type and conference (default 100)")
	cancelShare := fset.Float64("cancel-share", 0, "seats: share of commands that cancel (default 0.1)")
	payFail := fset.Float64("payment-fail-share", 0, "shop: share of payments that fail (default 0.1)")
	stockFail := fset.Float64("stock-fail-share", 0, "shop: share of stock reservations that fail (default 0.05)")
	seed := fset.Uint64("seed", 0, "random seed; 0: time-based")
	if err := fset.Parse(args[1:]); err != nil {
		return err
	}
	cat, err := events.Load()
	if err != nil {
		return err
	}
	copts := []schemas.CodecOpt{schemas.WithBindings(events.Bindings()...)}
	if *registry != "" {
		cl, err := sr.NewClient(sr.URLs(strings.Split(*registry, ",")...))
		if err != nil {
			return err
		}
		copts = append(copts, schemas.WithRegistry(cl))
	}
	codec, err := schemas.NewCodec(cat, copts...)
	if err != nil {
		return err
	}
	kafka := []kgo.Opt{kgo.SeedBrokers(strings.Split(*brokers, ",")...), kgo.AllowAutoTopicCreation()}
	log := slog.Default()
	start := time.Now()
	var counts producers.Counts
	switch domain {
	case "seats":
		st, err := seats.Run(ctx, seats.Config{
			Codec: codec, Kafka: kafka, Conferences: *aggregates, SeatsPerType: *seatsPer,
			Rate: *rate, Commands: *count, Duration: *duration, CancelShare: *cancelShare, Seed: *seed, Logger: log,
		})
		counts = st.Published
		fmt.Printf("commands %d, refused as overbooked %d\n", st.Commands, st.Overbooked)
		if err != nil && ctx.Err() == nil {
			return err
		}
	case "shop":
		st, err := shop.Run(ctx, shop.Config{
			Codec: codec, Kafka: kafka, Orders: *count, Duration: *duration, Rate: *rate, Products: *aggregates,
			PaymentFailShare: *payFail, StockFailShare: *stockFail, Seed: *seed, Logger: log,
		})
		counts = st.Published
		fmt.Printf("orders %d: confirmed %d, cancelled out of stock %d, cancelled after failed payment %d, open %d\n",
			st.Orders, st.Confirmed, st.OutOfStock, st.PaymentFailed, st.Open)
		if err != nil && ctx.Err() == nil {
			return err
		}
	}
	types := make([]string, 0, len(counts))
	for t := range counts {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, t := range types {
		fmt.Printf("  %-40s %d\n", t, counts[t])
	}
	el := time.Since(start)
	fmt.Printf("%d events in %v (%.0f/s)\n", counts.Total(), el.Round(time.Millisecond), float64(counts.Total())/el.Seconds())
	return nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
