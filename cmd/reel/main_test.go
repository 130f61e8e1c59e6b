package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/reel-dev/reel/cli"
)

// The stock binary adds the demo's commands to the engine's: produce
// refuses an unknown service as a usage error, which it could only do if
// it were registered.
func TestStockCommands(t *testing.T) {
	ctx := context.Background()
	err := cli.Run(ctx, []string{"produce", "nope"}, demo()...)
	if !errors.Is(err, cli.ErrUsage) || !strings.Contains(err.Error(), "seats|shop") {
		t.Fatalf("reel produce nope: %v", err)
	}
	if err := cli.Run(ctx, []string{"produce", "nope"}); !errors.Is(err, cli.ErrUsage) || !strings.Contains(err.Error(), "unknown command") {
		t.Fatalf("the engine alone has no produce: %v", err)
	}
	// The demo's projections are named by every command: an unknown name
	// lists them.
	err = cli.Run(ctx, []string{"dlq", "list", "-projection", "nope"}, demo()...)
	if err == nil || !strings.Contains(err.Error(), "order_saga") {
		t.Fatalf("reel dlq list -projection nope: %v", err)
	}
}
