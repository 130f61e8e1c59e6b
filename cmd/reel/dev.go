package main

import (
	"context"
	"errors"
)

func cmdDev(ctx context.Context, args []string) error {
	return errors.New("not implemented yet")
}
