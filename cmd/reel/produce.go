package main

import (
	"context"
	"errors"
)

// cmdProduce is owned by the event-catalog work (issue 4).
func cmdProduce(ctx context.Context, args []string) error {
	return errors.New("not implemented yet")
}
