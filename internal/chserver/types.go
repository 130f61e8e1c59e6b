package chserver

// Param is a query parameter ({name:Type} in SQL), from a param_<name> URL
// parameter.
type Param struct{ Name, Value string }

// Stats are the engine's counters for one statement, reported to clients in
// the X-ClickHouse-Summary header.
type Stats struct {
	Elapsed                   float64 // seconds
	ReadRows, ReadBytes       uint64  // from storage
	WrittenRows, WrittenBytes uint64
	ResultRows, ResultBytes   uint64
}

func (s *Stats) add(o Stats) {
	s.Elapsed += o.Elapsed
	s.ReadRows += o.ReadRows
	s.ReadBytes += o.ReadBytes
	s.WrittenRows += o.WrittenRows
	s.WrittenBytes += o.WrittenBytes
	s.ResultRows += o.ResultRows
	s.ResultBytes += o.ResultBytes
}
