//go:build !chdb

// Command reel-chdb is Reel's embedded ClickHouse. It needs cgo and the
// engine library; this stub only says how to build it.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "build reel-chdb with: bash scripts/chdb.sh install")
	os.Exit(2)
}
