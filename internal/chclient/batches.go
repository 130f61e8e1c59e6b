package chclient

import (
	"context"
	"errors"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// BatchIdleConns is how many idle connections the batch pool of
// OpenSplit keeps.
//
// A clickhouse-go connection encodes a batch into a buffer of its own and
// keeps it, grown to the largest block it has sent, for as long as it
// lives; over HTTP, Options.FreeBufOnConnRelease does not free it
// (clickhouse-go v2.50–v2.51). The pool hands out its idle connections
// in turn, so in one pool shared by batches and queries every connection
// ends up holding a batch-sized buffer: in the load test with 12
// partitions a topic, 30-odd connections held about 40 MB this way. A
// pool of their own for batches, keeping few idle, bounds that to
// BatchIdleConns buffers: a projection's group inserts its tables at once,
// one connection each, and a connection past the idle bound is closed
// when released (and its buffer with it).
const BatchIdleConns = 4

// OpenSplit opens opts as two pools: one for queries and statements, one
// for batches (PrepareBatch), which keeps at most BatchIdleConns idle
// connections. Both are bounded by opts.MaxOpenConns. The returned
// connection is a driver.Conn: callers see one connection.
func OpenSplit(opts *clickhouse.Options) (driver.Conn, error) {
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, err
	}
	bo := *opts
	bo.MaxIdleConns = min(BatchIdleConns, max(1, opts.MaxOpenConns))
	batches, err := clickhouse.Open(&bo)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return &splitConn{Conn: conn, batches: batches}, nil
}

// splitConn sends batches through a pool of their own (OpenSplit).
type splitConn struct {
	driver.Conn
	batches driver.Conn
}

func (c *splitConn) PrepareBatch(ctx context.Context, query string, opts ...driver.PrepareBatchOption) (driver.Batch, error) {
	return c.batches.PrepareBatch(ctx, query, opts...)
}

func (c *splitConn) Close() error {
	return errors.Join(c.batches.Close(), c.Conn.Close())
}
