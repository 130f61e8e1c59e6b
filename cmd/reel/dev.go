package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/internal/chclient"
	"github.com/reel-dev/reel/internal/chproc"
	pseats "github.com/reel-dev/reel/producers/seats"
	pshop "github.com/reel-dev/reel/producers/shop"
	"github.com/reel-dev/reel/projectors"
	"github.com/reel-dev/reel/projectors/declare"
	"github.com/reel-dev/reel/projectors/registry"
	"github.com/reel-dev/reel/schemas"
)

// demoQueries are what `reel dev` prints: the read models, queried with SQL.
var demoQueries = []devQuery{
	{"Seats per conference and type", "SELECT conference_id, seat_type, total, reserved, available FROM seats_available ORDER BY conference_id, seat_type"},
	{"Orders by status", "SELECT status, orders, round(total_cents / 100, 2) AS total FROM orders_by_status ORDER BY status"},
	{"Saga outcomes", "SELECT outcome, orders, stock_released FROM saga_outcomes ORDER BY outcome"},
	{"Top products today", "SELECT product_id, units, round(revenue_cents / 100, 2) AS revenue, orders FROM daily_sales WHERE day = today() ORDER BY revenue_cents DESC LIMIT 5"},
	{"Event log", "SELECT event_type, count() AS events FROM event_log GROUP BY event_type ORDER BY events DESC"},
}

func cmdDev(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("reel dev", flag.ContinueOnError)
	duration := fs.Duration("duration", 0, "stop after this long (0: until Ctrl-C)")
	dataDir := fs.String("data-dir", "", "keep Kafka and ClickHouse data here (default: a temporary directory, removed on exit)")
	chListen := fs.String("clickhouse-listen", "127.0.0.1:8123", "address of the embedded ClickHouse HTTP interface (falls back to a free port)")
	orderRate := fs.Float64("order-rate", 20, "shop orders per second")
	seatRate := fs.Float64("seat-rate", 20, "seat commands per second")
	every := fs.Duration("print-every", 5*time.Second, "print the queries this often")
	catDir := fs.String("catalog", "", "your event catalog: a directory of .avsc files (default: the embedded demo catalog)")
	projDir := fs.String("projections", "", "your declared projections: a directory of projection files (runs these instead of the built-in demo projections)")
	demo := fs.Bool("demo", false, "with -projections: run the demo producers too (needs the demo catalog)")
	kafkaPort := fs.Int("kafka-port", 0, "port of the embedded Kafka broker for your producers (default: a free port)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: reel dev [flags]\n\nRuns the demo on embedded defaults: Kafka (kfake, in process), ClickHouse\n(reel-chdb, or REEL_CLICKHOUSE_DSN), the demo services and every projection;\nprints SQL query results until Ctrl-C or -duration.\n\nWith -projections DIR (and -catalog DIR): runs your declared projections on\nyour catalog; produce to the printed Kafka address and query the printed\nClickHouse URL. The demo producers run only with -demo.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	dir := *dataDir
	if dir == "" {
		d, err := os.MkdirTemp("", "reel-dev-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}

	// What runs: the demo, or the user's catalog and projections.
	cat, projs, queries, err := devSetup(*catDir, *projDir)
	if err != nil {
		return err
	}
	produceDemo := *projDir == "" || *demo
	if produceDemo && *catDir != "" {
		return fmt.Errorf("%w: the demo producers need the demo catalog (leave out -catalog or -demo)", errUsage)
	}

	// Kafka: kfake in process.
	kopt := []kfake.Opt{kfake.NumBrokers(1), kfake.DefaultNumPartitions(6), kfake.AllowAutoTopicCreation(),
		kfake.DataDir(filepath.Join(dir, "kafka"))}
	if *kafkaPort > 0 {
		kopt = append(kopt, kfake.Ports(*kafkaPort))
	}
	kafka, err := kfake.NewCluster(kopt...)
	if err != nil {
		return fmt.Errorf("embedded Kafka: %w", err)
	}
	defer kafka.Close()
	brokers := kafka.ListenAddrs()

	// ClickHouse: REEL_CLICKHOUSE_DSN, else the embedded reel-chdb.
	dsn := os.Getenv("REEL_CLICKHOUSE_DSN")
	if dsn == "" {
		listen := *chListen
		if l, err := net.Listen("tcp", listen); err != nil {
			listen = "127.0.0.1:0"
		} else {
			l.Close()
		}
		srv, err := chproc.Start(ctx, chproc.Options{Dir: filepath.Join(dir, "clickhouse"), Listen: listen})
		if err != nil {
			if errors.Is(err, chproc.ErrNotInstalled) {
				return fmt.Errorf("%w\n(the README's demo command `bash scripts/demo.sh` installs it first)", err)
			}
			return err
		}
		defer srv.Stop()
		dsn = srv.DSN()
	}
	admin, err := chclient.Open(ctx, dsn)
	if err != nil {
		return err
	}
	if err := admin.Exec(ctx, "CREATE DATABASE IF NOT EXISTS reel"); err != nil {
		return fmt.Errorf("create database reel: %w", err)
	}
	admin.Close()
	dsn, _ = chclient.WithDatabase(dsn, "reel")
	conn, err := chclient.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close()

	var codecOpts []schemas.CodecOpt
	if *catDir == "" {
		codecOpts = append(codecOpts, schemas.WithBindings(schemas.DemoBindings()...))
	}
	codec, err := schemas.NewCodec(cat, codecOpts...)
	if err != nil {
		return err
	}
	topics := cat.Topics()
	for _, p := range projs {
		for _, t := range p.Topics {
			if !slices.Contains(topics, t) {
				topics = append(topics, t)
			}
		}
	}
	if err := createTopics(ctx, brokers, topics, 6); err != nil {
		return err
	}

	example := "SELECT * FROM seats_available"
	if len(queries) > 0 && *projDir != "" {
		example = queries[0].sql
	}
	fmt.Printf("Reel dev\n  Kafka (embedded kfake): %s  topics: %s\n  ClickHouse: %s\n  query it: curl '%s' --data-binary '%s'\n  catalog: %s\n",
		strings.Join(brokers, ","), strings.Join(topics, ", "), chclient.Redact(dsn), httpQueryURL(dsn), example, cat.Source())
	for _, p := range projs {
		fmt.Printf("  projection %s: topics %s\n", p.Name, strings.Join(p.Topics, ", "))
	}
	fmt.Println()

	var wg sync.WaitGroup
	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	errs := make(chan error, 16)
	for _, p := range projs {
		gen, err := projectors.LiveGeneration(ctx, conn, p)
		if err != nil {
			return err
		}
		r, err := projectors.NewRunner(p, conn, codec, projectors.Brokers(brokers...), projectors.Generation(gen), projectors.Logger(log))
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.Run(runCtx); err != nil {
				errs <- fmt.Errorf("projection %s: %w", p.Name, err)
			}
		}()
	}

	kopts := []kgo.Opt{kgo.SeedBrokers(brokers...)}
	var prodWG sync.WaitGroup
	if produceDemo {
		prodWG.Add(2)
		go runDemoProducers(ctx, &prodWG, codec, kopts, *seatRate, *orderRate, log, errs)
	}

	tick := time.NewTicker(*every)
	defer tick.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errs:
			stopRun()
			return err
		case <-tick.C:
			printQueries(context.Background(), os.Stdout, conn, queries)
		}
	}
	prodWG.Wait()
	// Let the projectors catch up with the last events before the final print.
	time.Sleep(time.Second)
	fmt.Println("== final ==")
	printQueries(context.Background(), os.Stdout, conn, queries)
	stopRun()
	wg.Wait()
	return nil
}

type devQuery struct{ title, sql string }

// devSetup decides what `reel dev` runs: the demo (catalog, every built-in
// projection, the demo queries), or the user's catalog and declared
// projections, queried through their views and tables.
func devSetup(catDir, projDir string) (*schemas.Catalog, []*projectors.Projection, []devQuery, error) {
	var cat *schemas.Catalog
	var err error
	if catDir != "" {
		cat, err = schemas.LoadDir(catDir)
	} else {
		cat, err = schemas.Load()
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("catalog: %w", err)
	}
	if projDir == "" {
		if catDir != "" {
			return nil, nil, nil, fmt.Errorf("%w: -catalog needs -projections (the built-in projections read the demo's events)", errUsage)
		}
		return cat, registry.All(), demoQueries, nil
	}
	projs, err := declare.LoadDir(projDir, cat)
	if err != nil {
		var es declare.Errors
		if errors.As(err, &es) {
			return nil, nil, nil, fmt.Errorf("%d error(s) in %s (reel projections check %s):\n%w", len(es), projDir, projDir, err)
		}
		return nil, nil, nil, err
	}
	var qs []devQuery
	for _, p := range projs {
		for _, v := range p.Views {
			qs = append(qs, devQuery{p.Name + ": view " + v.Name, "SELECT * FROM " + v.Name + " LIMIT 10"})
		}
		for _, t := range p.Tables {
			q := devQuery{p.Name + ": table " + t.Name, "SELECT * FROM " + t.Name + " LIMIT 10"}
			if !t.State {
				q.title += " (newest rows)"
				q.sql = "SELECT * FROM " + t.Name + " ORDER BY _event_ts DESC LIMIT 10"
			}
			qs = append(qs, q)
		}
	}
	return cat, projs, qs, nil
}

func runDemoProducers(ctx context.Context, wg *sync.WaitGroup, codec *schemas.Codec, kopts []kgo.Opt, seatRate, orderRate float64, log *slog.Logger, errs chan<- error) {
	go func() {
		defer wg.Done()
		st, err := pseats.Run(ctx, pseats.Config{Codec: codec, Kafka: kopts, Conferences: 3, Rate: seatRate, Logger: log})
		if err != nil && ctx.Err() == nil {
			errs <- fmt.Errorf("seats demo: %w", err)
		}
		fmt.Fprintf(os.Stderr, "seats demo: %d commands, %d refused as overbooked\n", st.Commands, st.Overbooked)
	}()
	go func() {
		defer wg.Done()
		st, err := pshop.Run(ctx, pshop.Config{Codec: codec, Kafka: kopts, Rate: orderRate, Drain: time.Second, Logger: log})
		if err != nil && ctx.Err() == nil {
			errs <- fmt.Errorf("shop demo: %w", err)
		}
		fmt.Fprintf(os.Stderr, "shop demo: %d orders, %d confirmed, %d out of stock, %d payment failed\n", st.Orders, st.Confirmed, st.OutOfStock, st.PaymentFailed)
	}()
}

func httpQueryURL(dsn string) string {
	if strings.HasPrefix(dsn, "http://") || strings.HasPrefix(dsn, "https://") {
		u := strings.SplitN(dsn, "?", 2)[0]
		i := strings.LastIndex(u, "/")
		return u[:i] + "/?database=" + chclient.Database(dsn)
	}
	return "(native protocol: use clickhouse-client)"
}

func createTopics(ctx context.Context, brokers []string, topics []string, partitions int32) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	res, err := adm.CreateTopics(ctx, partitions, 1, nil, topics...)
	if err != nil {
		return fmt.Errorf("create topics %v: %w", topics, err)
	}
	for _, r := range res {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", r.Topic, r.Err)
		}
	}
	return nil
}

func printQueries(ctx context.Context, w io.Writer, conn driver.Conn, queries []devQuery) {
	fmt.Fprintf(w, "---- %s ----\n", time.Now().Format(time.TimeOnly))
	for _, q := range queries {
		fmt.Fprintf(w, "%s\n  %s\n", q.title, q.sql)
		if err := printQuery(ctx, w, conn, q.sql); err != nil {
			fmt.Fprintf(w, "  error: %v\n", err)
		}
		fmt.Fprintln(w)
	}
}

// printQuery runs sql and prints the result as an aligned table.
func printQuery(ctx context.Context, w io.Writer, conn driver.Conn, sql string) error {
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return err
	}
	defer rows.Close()
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	types := rows.ColumnTypes()
	fmt.Fprintln(tw, "  "+strings.Join(rows.Columns(), "\t"))
	n := 0
	for rows.Next() {
		ptrs := make([]any, len(types))
		for i, t := range types {
			ptrs[i] = reflect.New(t.ScanType()).Interface()
		}
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		cells := make([]string, len(ptrs))
		for i, p := range ptrs {
			v := reflect.ValueOf(p).Elem().Interface()
			if t, ok := v.(time.Time); ok {
				v = t.Format(time.DateTime)
			}
			cells[i] = fmt.Sprint(v)
		}
		fmt.Fprintln(tw, "  "+strings.Join(cells, "\t"))
		n++
	}
	if n == 0 {
		fmt.Fprintln(tw, "  (no rows yet)")
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return tw.Flush()
}
