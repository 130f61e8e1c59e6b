package chserver

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Exception is an error raised by the engine, with ClickHouse's error code.
type Exception struct {
	Code int
	// Text is the full message as ClickHouse prints it:
	// "Code: 60. DB::Exception: Unknown table … (UNKNOWN_TABLE) (version …)".
	Text string
}

func (e *Exception) Error() string { return e.Text }

var codeRe = regexp.MustCompile(`Code:\s*(\d+)\.`)

// Error codes this package raises itself (values from ClickHouse's
// ErrorCodes.cpp).
const (
	codeCannotReadAllData = 33
	codeBadArguments      = 36
	codeCannotDecompress  = 271
	codeUnknownException  = 1002
)

// ParseError turns the engine's error text into an *Exception. Text without
// a "Code: N." prefix gets code 1002 (UNKNOWN_EXCEPTION).
func ParseError(text string) *Exception {
	text = strings.TrimSpace(text)
	if m := codeRe.FindStringSubmatchIndex(text); m != nil {
		code, _ := strconv.Atoi(text[m[2]:m[3]])
		return &Exception{Code: code, Text: text[m[0]:]}
	}
	return newException(codeUnknownException, "%s", text)
}

func newException(code int, format string, args ...any) *Exception {
	return &Exception{Code: code, Text: fmt.Sprintf("Code: %d. DB::Exception: %s", code, fmt.Sprintf(format, args...))}
}

// httpStatus maps an error code to the HTTP status ClickHouse's own HTTP
// handler answers with (exceptionCodeToHTTPStatus): authentication 401/403,
// malformed input 400, unknown objects 404, everything else 500. Only the
// common codes are listed. clickhouse-go reads the code from the
// X-ClickHouse-Exception-Code header and the body, whatever the status.
func httpStatus(code int) int {
	switch code {
	case 194: // REQUIRED_PASSWORD
		return 401
	case 192, 193, 516, 497, 164: // UNKNOWN_USER, WRONG_PASSWORD, AUTHENTICATION_FAILED, ACCESS_DENIED, READONLY
		return 403
	case 6, 15, 25, 26, 27, 36, 38, 41, 44, 53, 62, 72, 117, 167, 168, 321, 376:
		// CANNOT_PARSE_*, DUPLICATE_COLUMN, BAD_ARGUMENTS, ILLEGAL_COLUMN,
		// TYPE_MISMATCH, SYNTAX_ERROR, INCORRECT_DATA, TOO_DEEP/BIG_AST,
		// VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
		return 400
	case 46, 47, 50, 56, 60, 63, 73, 81, 115, 336:
		// UNKNOWN_FUNCTION/IDENTIFIER/TYPE/STORAGE/TABLE/AGGREGATE_FUNCTION/
		// FORMAT/DATABASE/SETTING/DATABASE_ENGINE
		return 404
	case 48: // NOT_IMPLEMENTED
		return 501
	case 159: // TIMEOUT_EXCEEDED
		return 408
	}
	return 500
}
