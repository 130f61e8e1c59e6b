// Package chserver serves ClickHouse's HTTP interface from the real
// ClickHouse engine embedded as a library (libchdb, chDB's C API), so that
// clickhouse-go/v2 over HTTP and curl talk to it as to a ClickHouse server.
// cmd/reel-chdb wraps it in a process; internal/chproc starts that.
//
//	srv, err := chserver.New(chserver.Config{Path: "/var/lib/reel/ch"})
//	if err != nil { ... }
//	defer srv.Close()
//	http.Serve(ln, srv) // then clickhouse.Open(&clickhouse.Options{Protocol: clickhouse.HTTP, …})
//
// The engine binding needs cgo and the build tag chdb (bash scripts/chdb.sh
// install). Without the tag the package still builds, and New fails.
//
// # How requests map onto the engine
//
//   - A pool of engine connections (Config.PoolSize) on one data directory;
//     each runs one statement at a time, further requests wait. session_id
//     is accepted but not pinned to a connection (clickhouse-go does not
//     use sessions).
//   - URL parameters other than the HTTP ones (query, database,
//     default_format, compress, decompress, enable_http_compression,
//     client_protocol_version, query_id, session_*, param_* …) are settings.
//     They are applied with SET on the connection; each connection remembers
//     what it changed and sets back to DEFAULT what the next request does not
//     ask for, so settings never leak between requests and a client that
//     always sends the same ones costs nothing.
//   - INSERT … FORMAT f / VALUES with data (in the body, after the
//     statement in the URL or in the body itself) goes through chDB's
//     streaming insert in 1 MiB chunks; request bodies are never held whole
//     (except one ClickHouse-compressed frame, which clickhouse-go makes as
//     large as its batch).
//   - Statements that return rows stream their output (chDB's streaming
//     query); the first MiB is buffered so small results carry
//     Content-Length and a complete X-ClickHouse-Summary, and an error before
//     that is a proper error response: the exception text as body, the code
//     in X-ClickHouse-Exception-Code, the HTTP status ClickHouse would use
//     (400 for syntax errors, 404 for unknown tables, 500 otherwise). Later
//     errors are written in-band with ClickHouse's __exception__ framing.
//   - Compression as clickhouse-go uses it: lz4/zstd as ClickHouse frames
//     (decompress=1 for the body, compress=1 for the response), gzip,
//     deflate, br (and zstd, lz4) as Content-Encoding; responses get a
//     Content-Encoding only with enable_http_compression=1, as in ClickHouse.
//
// # Native protocol revision
//
// chDB writes Native output at protocol revision 0 (no block info, no
// serialization flags) whatever client_protocol_version asks for, and
// clickhouse-go decodes every result at the revision its connection check
// ("SELECT displayName(), version(), revision(), timezone()") reported. The
// server answers that one query itself, encoded at the client's revision,
// with the engine's real name, version and time zone and revision 0, which
// keeps the driver's decoder in step with the engine's output byte for
// byte. The engine's version (26.7) keeps clickhouse-go from warning about
// an old server.
package chserver
