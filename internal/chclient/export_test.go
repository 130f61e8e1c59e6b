package chclient

import "github.com/ClickHouse/clickhouse-go/v2/lib/driver"

// BatchPool is the pool OpenSplit sends batches through.
func BatchPool(c driver.Conn) driver.Conn { return c.(*splitConn).batches }
