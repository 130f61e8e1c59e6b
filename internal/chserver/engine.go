package chserver

// engineConn is one engine connection: it runs one statement at a time.
// The chDB binding (chdb.go, build tag chdb) implements it.
type engineConn interface {
	// query runs a statement and returns its whole output.
	query(sql, format string, params []Param) ([]byte, Stats, error)
	// streamQuery runs a statement that produces rows and hands the output
	// to emit chunk by chunk; the slice is valid only during the call.
	streamQuery(sql, format string, params []Param, emit func([]byte) error) (Stats, error)
	// insert runs an INSERT without FORMAT clause, fed with data in format
	// pulled from next until it returns a nil chunk.
	insert(sql, format string, params []Param, next func() ([]byte, error)) (Stats, error)
	close()
}
