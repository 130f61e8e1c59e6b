package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/cli"
	"github.com/reel-dev/reel/examples/demo/events"
	pseats "github.com/reel-dev/reel/examples/demo/producers/seats"
	pshop "github.com/reel-dev/reel/examples/demo/producers/shop"
	"github.com/reel-dev/reel/examples/demo/projectors/registry"
	"github.com/reel-dev/reel/schemas"
)

// demo is everything the stock binary adds to the engine, listed in one
// place: the demo's catalog (the default of every command given no
// catalog.dir), its Go projections and payload types, its two services
// and its queries for `reel dev`, `reel produce` and `reel loadtest`.
func demo() []cli.Option {
	var seatRate, orderRate float64
	return []cli.Option{
		cli.WithCatalog(events.FS()),
		cli.WithProjections(registry.All()...),
		cli.WithBindings(events.Bindings()...),
		cli.WithDevProducer(cli.DevProducer{
			Name:  "seats demo",
			Flags: func(fs *flag.FlagSet) { fs.Float64Var(&seatRate, "seat-rate", 20, "seat commands per second") },
			Run: func(ctx context.Context, codec *schemas.Codec, kafka []kgo.Opt, log *slog.Logger) error {
				st, err := pseats.Run(ctx, pseats.Config{Codec: codec, Kafka: kafka, Conferences: 3, Rate: seatRate, Logger: log})
				fmt.Fprintf(os.Stderr, "seats demo: %d commands, %d refused as overbooked\n", st.Commands, st.Overbooked)
				return err
			},
		}),
		cli.WithDevProducer(cli.DevProducer{
			Name:  "shop demo",
			Flags: func(fs *flag.FlagSet) { fs.Float64Var(&orderRate, "order-rate", 20, "shop orders per second") },
			Run: func(ctx context.Context, codec *schemas.Codec, kafka []kgo.Opt, log *slog.Logger) error {
				st, err := pshop.Run(ctx, pshop.Config{Codec: codec, Kafka: kafka, Rate: orderRate, Drain: time.Second, Logger: log})
				fmt.Fprintf(os.Stderr, "shop demo: %d orders, %d confirmed, %d out of stock, %d payment failed\n", st.Orders, st.Confirmed, st.OutOfStock, st.PaymentFailed)
				return err
			},
		}),
		cli.WithDevQuery("Seats per conference and type", "SELECT conference_id, seat_type, total, reserved, available FROM seats_available ORDER BY conference_id, seat_type"),
		cli.WithDevQuery("Orders by status", "SELECT status, orders, round(total_cents / 100, 2) AS total FROM orders_by_status ORDER BY status"),
		cli.WithDevQuery("Saga outcomes", "SELECT outcome, orders, stock_released FROM saga_outcomes ORDER BY outcome"),
		cli.WithDevQuery("Top products today", "SELECT product_id, units, round(revenue_cents / 100, 2) AS revenue, orders FROM daily_sales WHERE day = today() ORDER BY revenue_cents DESC LIMIT 5"),
		cli.WithDevQuery("Event log", "SELECT event_type, count() AS events FROM event_log GROUP BY event_type ORDER BY events DESC"),
		cli.WithCommand("produce", "seats|shop: run a demo service that publishes events", cmdProduce),
		cli.WithCommand("loadtest", "measure throughput, freshness, replay, cut-over against raw limits and a peer", cmdLoadtest),
	}
}
