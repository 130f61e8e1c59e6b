package cli

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/internal/app"
	"github.com/reel-dev/reel/projectors"
	"github.com/reel-dev/reel/projectors/store"
)

// cmdDLQ inspects and resolves parked aggregates:
//
//	reel dlq list    -config reel.yaml -projection orders
//	reel dlq show    -config reel.yaml -projection orders -aggregate o-17
//	reel dlq discard -config reel.yaml -projection orders -aggregate o-17 -admin http://reel:9464 -token-file /run/secrets/admin
//	reel dlq replay  -config reel.yaml -projection orders -aggregate o-17 -admin http://reel:9464 -token-file /run/secrets/admin
//
// Replay needs a running projector (it re-applies through the partition's
// worker), so it always goes through -admin. Discard does too when a
// projector runs the generation, because the worker keeps the aggregate
// parked in memory; with no projector running it is written directly.
func (pr *program) cmdDLQ(ctx context.Context, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("%w: reel dlq list|show|discard|replay -config reel.yaml -projection P [-aggregate A]", errUsage)
	}
	action := args[0]
	fs := flag.NewFlagSet("dlq "+action, flag.ContinueOnError)
	path := fs.String("config", "", "YAML config file")
	proj := fs.String("projection", "", "projection name (required)")
	agg := fs.String("aggregate", "", "aggregate ID (show, discard, replay)")
	gen := fs.Int("generation", 0, "generation (default: the live one)")
	adminURL := fs.String("admin", "", "admin endpoint of a running `reel project`, e.g. http://reel:9464")
	tokenFile := fs.String("token-file", "", "file with the admin bearer token (default: env REEL_ADMIN_TOKEN)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args[1:]); err != nil {
		return errors.Join(errUsage, err)
	}
	if *proj == "" {
		return fmt.Errorf("%w: -projection is required", errUsage)
	}
	cfg, err := pr.loadConfig(*path, os.Stderr)
	if err != nil {
		return err
	}
	p, err := cfg.Projection(*proj)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if action != "list" && *agg == "" {
		return fmt.Errorf("%w: dlq %s needs -aggregate", errUsage, action)
	}
	switch action {
	case "list", "show", "discard", "replay":
	default:
		return fmt.Errorf("%w: unknown dlq action %q (list, show, discard, replay)", errUsage, action)
	}
	if action == "replay" || (action == "discard" && *adminURL != "") {
		if *adminURL == "" {
			return fmt.Errorf("%w: replay runs in the projector: pass -admin http://host:9464 (and -token-file)", errUsage)
		}
		tok, err := adminToken(*tokenFile)
		if err != nil {
			return err
		}
		return callAdmin(ctx, os.Stdout, *adminURL, tok, action, p.Name, *gen, *agg)
	}

	conn, err := app.OpenClickHouse(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	g, err := pickGeneration(ctx, conn, p.Name, *gen)
	if err != nil {
		return err
	}
	switch action {
	case "list":
		aggs, err := store.QueryParkedAggregates(ctx, conn, p.Name, g)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSONOut(os.Stdout, aggs)
		}
		return writeParkedList(os.Stdout, p.Name, g, aggs)
	case "show":
		evs, err := store.QueryParkedEvents(ctx, conn, p.Name, g, *agg)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return fmt.Errorf("aggregate %q has no unresolved parked events in %s g%d", *agg, p.Name, g)
		}
		if *asJSON {
			return writeJSONOut(os.Stdout, evs)
		}
		return writeParkedEvents(os.Stdout, evs)
	default: // discard without -admin
		kopts, err := app.KafkaOpts(cfg)
		if err != nil {
			return err
		}
		cl, err := kgo.NewClient(kopts...)
		if err != nil {
			return err
		}
		defer cl.Close()
		if n, err := groupMembers(ctx, kadm.NewClient(cl), store.Group(p.Name, g)); err != nil {
			return fmt.Errorf("cannot tell whether a projector runs %s g%d (%v); pass -admin to discard through it", p.Name, g, err)
		} else if n > 0 {
			return fmt.Errorf("a projector runs %s g%d (%d group members): discard through it with -admin http://host:9464 -token-file …, so it unparks the aggregate", p.Name, g, n)
		}
		n, err := store.MarkParkedResolved(ctx, conn, p.Name, g, *agg, projectors.ResolutionDiscarded)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("aggregate %q has no unresolved parked events in %s g%d", *agg, p.Name, g)
		}
		fmt.Printf("discarded %d parked event(s) of %q in %s g%d\n", n, *agg, p.Name, g)
		return nil
	}
}

// pickGeneration returns gen, or the live generation when gen is 0.
func pickGeneration(ctx context.Context, conn driver.Conn, projection string, gen int) (int, error) {
	gens, err := store.Generations(ctx, conn, projection)
	if err != nil {
		return 0, err
	}
	for _, g := range gens {
		if (gen == 0 && g.Status == store.StatusLive) || (gen != 0 && g.Generation == gen) {
			return g.Generation, nil
		}
	}
	if gen == 0 {
		return 0, fmt.Errorf("projection %s has no live generation (has it run? see `reel status`)", projection)
	}
	return 0, fmt.Errorf("projection %s has no generation %d", projection, gen)
}

func groupMembers(ctx context.Context, adm *kadm.Client, group string) (int, error) {
	dg, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return 0, err
	}
	d, ok := dg[group]
	if !ok {
		return 0, nil
	}
	if d.Err != nil {
		return 0, d.Err
	}
	return len(d.Members), nil
}

func adminToken(file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("-token-file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	if t := os.Getenv("REEL_ADMIN_TOKEN"); t != "" {
		return t, nil
	}
	return "", fmt.Errorf("%w: the admin endpoint needs a token: -token-file or REEL_ADMIN_TOKEN", errUsage)
}

// callAdmin POSTs to /admin/dlq/<action> and prints the answer.
func callAdmin(ctx context.Context, w io.Writer, base, token, action, projection string, gen int, aggregate string) error {
	q := url.Values{"projection": {projection}, "aggregate": {aggregate}}
	if gen != 0 {
		q.Set("generation", strconv.Itoa(gen))
	}
	u := strings.TrimRight(base, "/") + "/admin/dlq/" + action + "?" + q.Encode()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("admin endpoint: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("admin endpoint answered %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	_, err = w.Write(body)
	return err
}

func writeJSONOut(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func writeParkedList(w io.Writer, proj string, gen int, aggs []store.ParkedAggregate) error {
	if len(aggs) == 0 {
		fmt.Fprintf(w, "%s g%d: no parked aggregates\n", proj, gen)
		return nil
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AGGREGATE\tTOPIC\tPARTITION\tEVENTS\tFIRST OFFSET\tLAST OFFSET\tREASONS\tPARKED AT\tFIRST ERROR")
	for _, a := range aggs {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", a.Aggregate, a.Topic, a.Partition, a.Events, a.FirstOffset, a.LastOffset,
			strings.Join(a.Reasons, ","), a.ParkedAt.UTC().Format(time.RFC3339), oneLine(a.FirstError, 120))
	}
	return tw.Flush()
}

func writeParkedEvents(w io.Writer, evs []store.ParkedEvent) error {
	for i, e := range evs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s/%d@%d  aggregate %s\n", e.Topic, e.Partition, e.Offset, e.Aggregate)
		fmt.Fprintf(w, "  reason:     %s\n", e.Reason)
		fmt.Fprintf(w, "  error:      %s\n", e.Error)
		fmt.Fprintf(w, "  event:      %s %s\n", orDash(e.EventType), orDash(e.EventID))
		fmt.Fprintf(w, "  event time: %s   parked at: %s\n", e.EventTime.UTC().Format(time.RFC3339Nano), e.ParkedAt.UTC().Format(time.RFC3339Nano))
		keys := make([]string, 0, len(e.Headers))
		for k := range e.Headers {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(w, "  headers:\n")
		for _, k := range keys {
			fmt.Fprintf(w, "    %s: %s\n", k, e.Headers[k])
		}
		preview := e.Value
		if len(preview) > 64 {
			preview = preview[:64]
		}
		fmt.Fprintf(w, "  value:      %d bytes: %s\n", len(e.Value), hex.EncodeToString(preview))
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
