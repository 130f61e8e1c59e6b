// Command channels is a Reel binary built outside Reel's repository: the
// whole reel CLI (dev, project, status, dlq, rebuild, …) with this team's
// Go projection compiled in beside any declared ones.
//
//	go run . dev -duration 30s          # embedded Kafka + ClickHouse, a producer, the projection
//	go run . project -config reel.yaml  # in production (docs/library.md)
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/cli"
	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/producers"
	"github.com/reel-dev/reel/schemas"
)

func main() {
	cli.Main(options()...)
}

// options lists every component this binary adds to the engine.
func options() []cli.Option {
	var orders int
	return []cli.Option{
		cli.WithName("channels"),
		// The catalog the binary uses when the config names none. This
		// example reads the demo's shop.OrderPlaced, so it carries the
		// demo's catalog; a team embeds its own (or sets catalog.dir).
		cli.WithCatalog(events.FS()),
		cli.WithProjections(Channels()),
		cli.WithBindings(schemas.BindPayload[OrderPlaced]()),
		cli.WithDevProducer(cli.DevProducer{
			Name:  "orders",
			Flags: func(fs *flag.FlagSet) { fs.IntVar(&orders, "orders", 100, "orders `reel dev` places") },
			Run: func(ctx context.Context, codec *schemas.Codec, kafka []kgo.Opt, _ *slog.Logger) error {
				return placeOrders(ctx, codec, kafka, orders)
			},
		}),
	}
}

var channels = []string{"web", "app", "store"}

// placeOrders publishes n OrderPlaced events, o-1 … o-n, order i in
// channel i mod 3.
func placeOrders(ctx context.Context, codec *schemas.Codec, kafka []kgo.Opt, n int) error {
	p, err := producers.Open(codec, kafka...)
	if err != nil {
		return err
	}
	defer p.Close()
	for i := 1; i <= n; i++ {
		o := &OrderPlaced{
			OrderID: fmt.Sprintf("o-%d", i), CustomerID: fmt.Sprintf("c-%d", rand.IntN(20)), Currency: "EUR",
			ItemCount: 1 + i%3, PlacedAt: time.Now(), Channel: channels[i%len(channels)],
		}
		if _, err := p.Publish(ctx, schemas.NewEvent(o)); err != nil {
			return err
		}
	}
	return nil
}
