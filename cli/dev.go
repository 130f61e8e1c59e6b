package cli

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
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/internal/app"
	"github.com/reel-dev/reel/internal/chclient"
	"github.com/reel-dev/reel/internal/chproc"
	"github.com/reel-dev/reel/internal/config"
	"github.com/reel-dev/reel/projectors/declare"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/schemas"
)

func (pr *program) cmdDev(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("reel dev", flag.ContinueOnError)
	duration := fs.Duration("duration", 0, "stop after this long (0: until Ctrl-C)")
	dataDir := fs.String("data-dir", "", "keep Kafka and ClickHouse data here (default: a temporary directory, removed on exit)")
	chListen := fs.String("clickhouse-listen", "127.0.0.1:8123", "address of the embedded ClickHouse HTTP interface (falls back to a free port)")
	every := fs.Duration("print-every", 5*time.Second, "print the queries this often")
	catDir := fs.String("catalog", "", "your event catalog: a directory of .avsc files (default: the catalog the binary embeds)")
	projDir := fs.String("projections", "", "your declared projections: a directory of projection files (runs these instead of the Go projections compiled in)")
	demo := fs.Bool("demo", false, "with -projections: run the producers compiled in too (they need the embedded catalog)")
	kafkaPort := fs.Int("kafka-port", 0, "port of the embedded Kafka broker for your producers (default: a free port)")
	for _, p := range pr.producers {
		if p.Flags != nil {
			p.Flags(fs)
		}
	}
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: reel dev [flags]\n\nRuns on embedded defaults: Kafka (kfake, in process), ClickHouse\n(reel-chdb, or REEL_CLICKHOUSE_DSN), the producers and Go projections\ncompiled in (the stock binary: the demo services and projections); prints\nSQL query results until Ctrl-C or -duration.\n\nWith -projections DIR (and -catalog DIR): runs your declared projections on\nyour catalog; produce to the printed Kafka address and query the printed\nClickHouse URL. The producers compiled in run only with -demo.")
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
	cat, projs, queries, err := pr.devSetup(*catDir, *projDir)
	if err != nil {
		return err
	}
	produceDemo := (*projDir == "" || *demo) && len(pr.producers) > 0
	if produceDemo && *catDir != "" {
		return fmt.Errorf("%w: the producers compiled in need the embedded catalog (leave out -catalog or -demo)", errUsage)
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
	// Every projection's partition workers share this pool (and hold a
	// connection per table while a batch is sent): clickhouse-go's default
	// of 10 starves the supervisor and the rebuilds' generations.
	poolDSN := dsn
	if !strings.Contains(dsn, "max_open_conns=") {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		poolDSN += sep + "max_open_conns=64"
	}
	conn, err := chclient.Open(ctx, poolDSN)
	if err != nil {
		return err
	}
	defer conn.Close()

	codec, err := schemas.NewCodec(cat, schemas.WithBindings(app.BindingsFor(cat, pr.bindings)...))
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

	example := "SELECT 1"
	if len(queries) > 0 {
		example = queries[0].sql
	}
	fmt.Printf("Reel dev\n  Kafka (embedded kfake): %s  topics: %s\n  ClickHouse: %s\n  query it: curl '%s' --data-binary '%s'\n  catalog: %s\n",
		strings.Join(brokers, ","), strings.Join(topics, ", "), chclient.Redact(dsn), httpQueryURL(dsn), example, cat.Source())
	for _, p := range projs {
		fmt.Printf("  projection %s: topics %s\n", p.Name, strings.Join(p.Topics, ", "))
	}
	fmt.Println()

	// The projections run under the Supervisor, as in `reel project`: it
	// follows the generation registry, so `reel rebuild` and `reel
	// rollback` against this ClickHouse move what runs.
	cfg := config.Default()
	cfg.Kafka.Brokers = brokers
	cfg.Catalog.Dir, cfg.Projections.Dir = *catDir, *projDir
	pr.configure(&cfg)
	sup, err := app.NewSupervisor(&cfg, conn, codec, []kgo.Opt{kgo.SeedBrokers(brokers...)}, prometheus.NewRegistry(), log)
	if err != nil {
		return err
	}
	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	supDone := make(chan error, 1)
	go func() { supDone <- sup.Run(runCtx) }()
	errs := make(chan error, 16)

	kopts := []kgo.Opt{kgo.SeedBrokers(brokers...)}
	var prodWG sync.WaitGroup
	if produceDemo {
		for _, p := range pr.producers {
			prodWG.Add(1)
			go func() {
				defer prodWG.Done()
				if err := p.Run(ctx, codec, kopts, log); err != nil && ctx.Err() == nil {
					errs <- fmt.Errorf("%s: %w", p.Name, err)
				}
			}()
		}
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
			<-supDone
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
	return <-supDone
}

type devQuery struct{ title, sql string }

// devSetup decides what `reel dev` runs: the program's Go projections on
// the embedded catalog (queried with its dev queries, else through their
// views and tables), or the user's catalog and declared projections,
// queried through their views and tables.
func (pr *program) devSetup(catDir, projDir string) (*schemas.Catalog, []*projection.Projection, []devQuery, error) {
	var cat *schemas.Catalog
	var err error
	cat, err = pr.loadCatalog(catDir)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("catalog: %w", err)
	}
	if projDir == "" {
		if catDir != "" {
			return nil, nil, nil, fmt.Errorf("%w: -catalog needs -projections (the Go projections compiled in read the embedded catalog's events)", errUsage)
		}
		if len(pr.projections) == 0 {
			return nil, nil, nil, fmt.Errorf("%w: no Go projections compiled in: -projections DIR runs declared ones", errUsage)
		}
		qs := pr.queries
		if len(qs) == 0 {
			qs = projectionQueries(pr.projections)
		}
		return cat, pr.projections, qs, nil
	}
	projs, err := declare.LoadDir(projDir, cat)
	if err != nil {
		var es declare.Errors
		if errors.As(err, &es) {
			return nil, nil, nil, fmt.Errorf("%d error(s) in %s (reel projections check %s):\n%w", len(es), projDir, projDir, err)
		}
		return nil, nil, nil, err
	}
	return cat, projs, projectionQueries(projs), nil
}

// projectionQueries reads every view and table of projs: state tables
// as they are, others newest rows first.
func projectionQueries(projs []*projection.Projection) []devQuery {
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
	return qs
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
