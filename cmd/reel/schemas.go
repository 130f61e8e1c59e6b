package main

import (
	"context"
	"errors"
)

// cmdSchemas is owned by the event-catalog work (issue 4).
func cmdSchemas(ctx context.Context, args []string) error {
	return errors.New("not implemented yet")
}
