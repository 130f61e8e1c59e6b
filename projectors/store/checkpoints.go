package store

import "strings"

// CheckpointsInsert is the statement and values that record, for every
// table of the generation, that partition k is applied up to last, written
// by the owner of claim epoch into the guarded checkpoints (see DESIGN.md,
// "Exactly-once effects", 2). One statement with bound values (no DESCRIBE
// round trip, unlike a prepared batch): it runs once per batch.
func CheckpointsInsert(l *Layout, k TopicPartition, last int64, epoch uint64) (string, []any) {
	var q strings.Builder
	q.WriteString("INSERT INTO " + CheckpointsTable + inboxSuffix + " (proj, generation, tbl, topic, part, off, updated_at, _epoch) VALUES ")
	args := make([]any, 0, 7*len(l.Tables))
	for i, t := range l.Tables {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?, ?, ?, ?, now64(3), ?)")
		args = append(args, l.Projection.Name, uint32(l.Generation), t.Logical, k.Topic, uint32(k.Partition), uint64(last), epoch)
	}
	return q.String(), args
}

// ResolvedInsert records resolved parked events through the guarded inbox
// of ResolvedTable; a batch appends (proj, generation, topic, part, off,
// resolution, resolved_at, _epoch).
const ResolvedInsert = "INSERT INTO " + ResolvedTable + inboxSuffix + " (proj, generation, topic, part, off, resolution, resolved_at, _epoch)"
