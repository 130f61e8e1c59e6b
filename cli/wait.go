package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/reel-dev/reel/internal/app"
	"github.com/reel-dev/reel/projectors/store"
)

// cmdWait is read-your-writes from the shell: it returns once the live
// generation of a projection has made the given positions durable in
// ClickHouse (positions are what producers.Publish returns).
//
//	reel wait -config reel.yaml -projection orders shop.orders/3@1742 [more…]
func (pr *program) cmdWait(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("wait", flag.ContinueOnError)
	path := fs.String("config", "", "YAML config file")
	proj := fs.String("projection", "", "projection to wait for (required)")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return errors.Join(errUsage, err)
	}
	if *proj == "" || fs.NArg() == 0 {
		return fmt.Errorf("%w: reel wait -projection P topic/partition@offset…", errUsage)
	}
	offsets, err := parsePositions(fs.Args())
	if err != nil {
		return errors.Join(errUsage, err)
	}
	cfg, err := pr.loadConfig(*path, os.Stderr)
	if err != nil {
		return err
	}
	p, err := cfg.Projection(*proj)
	if err != nil {
		return err
	}
	conn, err := app.OpenClickHouse(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	gen, err := store.LiveGeneration(ctx, conn, p)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	start := time.Now()
	if err := store.WaitApplied(wctx, conn, p.Name, gen, offsets, 20*time.Millisecond); err != nil {
		return err
	}
	fmt.Printf("applied by %s g%d after %s\n", p.Name, gen, time.Since(start).Round(time.Millisecond))
	return nil
}

// parsePositions reads topic/partition@offset arguments.
func parsePositions(args []string) (map[string]map[int32]int64, error) {
	out := map[string]map[int32]int64{}
	for _, a := range args {
		tp, off, ok := strings.Cut(a, "@")
		i := strings.LastIndex(tp, "/")
		if !ok || i <= 0 {
			return nil, fmt.Errorf("position %q: want topic/partition@offset", a)
		}
		part, err1 := strconv.ParseInt(tp[i+1:], 10, 32)
		o, err2 := strconv.ParseInt(off, 10, 64)
		if err1 != nil || err2 != nil || part < 0 || o < 0 {
			return nil, fmt.Errorf("position %q: want topic/partition@offset with non-negative numbers", a)
		}
		topic := tp[:i]
		if out[topic] == nil {
			out[topic] = map[int32]int64{}
		}
		out[topic][int32(part)] = max(out[topic][int32(part)], o)
	}
	return out, nil
}
