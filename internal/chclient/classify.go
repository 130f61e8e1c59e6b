package chclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// Class says what a caller should do with a ClickHouse error.
type Class int

const (
	// Transient errors (network, timeouts, too many parts, memory limit,
	// and anything not known to be permanent) are retried with backoff.
	Transient Class = iota
	// Permanent errors (syntax, unknown table or column, type mismatch,
	// authentication, read-only) fail the same way on every retry: the
	// caller stops, or parks the row at fault.
	Permanent
	// Canceled is the caller's own context ending: neither retried nor
	// reported.
	Canceled
)

func (c Class) String() string {
	switch c {
	case Permanent:
		return "permanent"
	case Canceled:
		return "canceled"
	}
	return "transient"
}

// permanentCodes are ClickHouse error codes (ErrorCodes.cpp) that no retry
// can cure: the statement, the schema, the data or the user's rights must
// change first.
var permanentCodes = map[int32]string{
	6: "CANNOT_PARSE_TEXT", 8: "THERE_IS_NO_COLUMN", 10: "NOT_FOUND_COLUMN_IN_BLOCK",
	16: "NO_SUCH_COLUMN_IN_TABLE", 27: "CANNOT_PARSE_INPUT_ASSERTION_FAILED", 36: "BAD_ARGUMENTS",
	41: "CANNOT_PARSE_DATETIME", 42: "NUMBER_OF_ARGUMENTS_DOESNT_MATCH", 43: "ILLEGAL_TYPE_OF_ARGUMENT", 44: "ILLEGAL_COLUMN",
	46: "UNKNOWN_FUNCTION", 47: "UNKNOWN_IDENTIFIER", 48: "NOT_IMPLEMENTED", 50: "UNKNOWN_TYPE",
	53: "TYPE_MISMATCH", 60: "UNKNOWN_TABLE", 62: "SYNTAX_ERROR", 69: "ARGUMENT_OUT_OF_BOUND",
	70: "CANNOT_CONVERT_TYPE", 72: "CANNOT_PARSE_NUMBER", 81: "UNKNOWN_DATABASE",
	115: "UNKNOWN_SETTING", 117: "INCORRECT_DATA", 164: "READONLY", 192: "UNKNOWN_USER",
	193: "WRONG_PASSWORD", 194: "REQUIRED_PASSWORD", 321: "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
	452: "SETTING_CONSTRAINT_VIOLATION", 497: "ACCESS_DENIED", 516: "AUTHENTICATION_FAILED",
}

// transientCodes are the codes known to pass (listed for the metrics' and
// logs' sake: every code not in permanentCodes is transient).
var transientCodes = map[int32]string{
	3: "UNEXPECTED_END_OF_FILE", 23: "CANNOT_READ_FROM_ISTREAM", 24: "CANNOT_WRITE_TO_OSTREAM",
	32: "ATTEMPT_TO_READ_AFTER_EOF", 159: "TIMEOUT_EXCEEDED", 173: "CANNOT_ALLOCATE_MEMORY",
	202: "TOO_MANY_SIMULTANEOUS_QUERIES", 203: "NO_FREE_CONNECTION", 209: "SOCKET_TIMEOUT",
	210: "NETWORK_ERROR", 236: "ABORTED", 241: "MEMORY_LIMIT_EXCEEDED", 242: "TABLE_IS_READ_ONLY",
	252: "TOO_MANY_PARTS", 279: "ALL_CONNECTION_TRIES_FAILED", 285: "TOO_FEW_LIVE_REPLICAS",
	319: "UNKNOWN_STATUS_OF_INSERT", 394: "QUERY_WAS_CANCELLED", 425: "SYSTEM_ERROR",
	439: "CANNOT_SCHEDULE_TASK", 999: "KEEPER_EXCEPTION",
}

// Classify says whether err is worth retrying. ClickHouse exceptions
// (*clickhouse.Exception, over either protocol) are classified by code;
// network errors, timeouts and unknown errors are transient; the end of
// the caller's context is Canceled.
func Classify(err error) Class {
	if err == nil {
		return Transient
	}
	if errors.Is(err, context.Canceled) {
		return Canceled
	}
	var pe *PermanentError
	if errors.As(err, &pe) {
		return Permanent
	}
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		if _, ok := permanentCodes[ex.Code]; ok {
			return Permanent
		}
		return Transient
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, context.DeadlineExceeded) {
		return Transient
	}
	return Transient
}

// Code returns the ClickHouse error code and name of err (0, "" when err
// is not a server exception).
func Code(err error) (int32, string) {
	var ex *clickhouse.Exception
	if !errors.As(err, &ex) {
		return 0, ""
	}
	if n, ok := permanentCodes[ex.Code]; ok {
		return ex.Code, n
	}
	if n, ok := transientCodes[ex.Code]; ok {
		return ex.Code, n
	}
	return ex.Code, ex.Name
}

// PermanentError is a ClickHouse error that retrying cannot cure, with the
// operation that met it. errors.Is(err, ErrPermanent) matches it.
type PermanentError struct {
	Op   string // what Reel was doing: "insert into orders__g1", "claim partitions"
	Code int32  // ClickHouse error code, 0 when not a server exception
	Name string // the code's name (TYPE_MISMATCH, ACCESS_DENIED, …)
	Err  error
}

// ErrPermanent matches every *PermanentError.
var ErrPermanent = errors.New("permanent ClickHouse error")

func (e *PermanentError) Error() string {
	if e.Code != 0 {
		return fmt.Sprintf("%s: permanent ClickHouse error %d %s (not retried; fix the cause and restart): %v", e.Op, e.Code, e.Name, e.Err)
	}
	return fmt.Sprintf("%s: permanent ClickHouse error (not retried; fix the cause and restart): %v", e.Op, e.Err)
}

func (e *PermanentError) Unwrap() error { return e.Err }

func (e *PermanentError) Is(target error) bool { return target == ErrPermanent }

// AsPermanent wraps err as a *PermanentError of op (err already one is
// returned as is).
func AsPermanent(op string, err error) error {
	var pe *PermanentError
	if errors.As(err, &pe) {
		return err
	}
	code, name := Code(err)
	return &PermanentError{Op: op, Code: code, Name: name, Err: err}
}
