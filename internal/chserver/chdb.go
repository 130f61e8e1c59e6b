//go:build chdb

package chserver

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>

// chDB's C API (programs/local/chdb.h in chdb-core). The npm package ships
// no header, so the few prototypes used here are declared by hand. The
// handles are opaque pointers; only their size matters across the ABI.
typedef void *chdb_connection;
typedef void *chdb_insert_stream;
typedef struct chdb_result_ chdb_result;

// The library is loaded with dlopen rather than linked, so that any build
// with -tags chdb works without CGO_LDFLAGS and the binary can point at the
// cached library at run time (see Load).
static void *reel_lib;
static const char *(*p_version)(void);
static void (*p_set_signal_handlers_enabled)(int);
static chdb_connection *(*p_connect)(int, char **);
static void (*p_close_conn)(chdb_connection *);
static chdb_result *(*p_query_with_params_n)(chdb_connection, const char *, size_t, const char *, size_t,
	const char *const *, const size_t *, const char *const *, const size_t *, size_t);
static chdb_result *(*p_stream_query_with_params_n)(chdb_connection, const char *, size_t, const char *, size_t,
	const char *const *, const size_t *, const char *const *, const size_t *, size_t);
static chdb_result *(*p_stream_fetch_result)(chdb_connection, chdb_result *);
static void (*p_stream_cancel_query)(chdb_connection, chdb_result *);
static void (*p_destroy_query_result)(chdb_result *);
static char *(*p_result_buffer)(chdb_result *);
static size_t (*p_result_length)(chdb_result *);
static double (*p_result_elapsed)(chdb_result *);
static uint64_t (*p_result_rows_read)(chdb_result *);
static uint64_t (*p_result_bytes_read)(chdb_result *);
static uint64_t (*p_result_storage_rows_read)(chdb_result *);
static uint64_t (*p_result_storage_bytes_read)(chdb_result *);
static uint64_t (*p_result_rows_written)(chdb_result *);
static uint64_t (*p_result_bytes_written)(chdb_result *);
static const char *(*p_result_error)(chdb_result *);
static chdb_insert_stream (*p_stream_insert_with_params_n)(chdb_connection, const char *, size_t, const char *, size_t,
	const char *const *, const size_t *, const char *const *, const size_t *, size_t);
static int (*p_stream_append)(chdb_insert_stream, const void *, size_t);
static chdb_result *(*p_stream_done)(chdb_insert_stream);
static void (*p_stream_cancel_insert)(chdb_insert_stream);
static const char *(*p_stream_insert_error)(chdb_insert_stream);
static void (*p_destroy_insert_stream)(chdb_insert_stream);

#define REEL_SYM(var, name) do { *(void **)(&var) = dlsym(reel_lib, name); if (!var) return "missing symbol " name; } while (0)

static const char *reel_load(const char *path) {
	if (reel_lib) return NULL;
	void *h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
	if (!h) return dlerror();
	reel_lib = h;
	REEL_SYM(p_version, "chdb_version");
	REEL_SYM(p_set_signal_handlers_enabled, "chdb_set_signal_handlers_enabled");
	REEL_SYM(p_connect, "chdb_connect");
	REEL_SYM(p_close_conn, "chdb_close_conn");
	REEL_SYM(p_query_with_params_n, "chdb_query_with_params_n");
	REEL_SYM(p_stream_query_with_params_n, "chdb_stream_query_with_params_n");
	REEL_SYM(p_stream_fetch_result, "chdb_stream_fetch_result");
	REEL_SYM(p_stream_cancel_query, "chdb_stream_cancel_query");
	REEL_SYM(p_destroy_query_result, "chdb_destroy_query_result");
	REEL_SYM(p_result_buffer, "chdb_result_buffer");
	REEL_SYM(p_result_length, "chdb_result_length");
	REEL_SYM(p_result_elapsed, "chdb_result_elapsed");
	REEL_SYM(p_result_rows_read, "chdb_result_rows_read");
	REEL_SYM(p_result_bytes_read, "chdb_result_bytes_read");
	REEL_SYM(p_result_storage_rows_read, "chdb_result_storage_rows_read");
	REEL_SYM(p_result_storage_bytes_read, "chdb_result_storage_bytes_read");
	REEL_SYM(p_result_rows_written, "chdb_result_rows_written");
	REEL_SYM(p_result_bytes_written, "chdb_result_bytes_written");
	REEL_SYM(p_result_error, "chdb_result_error");
	REEL_SYM(p_stream_insert_with_params_n, "chdb_stream_insert_with_params_n");
	REEL_SYM(p_stream_append, "chdb_stream_append");
	REEL_SYM(p_stream_done, "chdb_stream_done");
	REEL_SYM(p_stream_cancel_insert, "chdb_stream_cancel_insert");
	REEL_SYM(p_stream_insert_error, "chdb_stream_insert_error");
	REEL_SYM(p_destroy_insert_stream, "chdb_destroy_insert_stream");
	// chDB would otherwise install process-wide handlers for SIGSEGV,
	// SIGINT, SIGTERM … and take them away from the Go runtime.
	p_set_signal_handlers_enabled(0);
	return NULL;
}

static const char *reel_version(void) { return p_version(); }
static chdb_connection *reel_connect(int argc, char **argv) { return p_connect(argc, argv); }
static void reel_close(chdb_connection *c) { p_close_conn(c); }
static chdb_result *reel_query(chdb_connection *c, const char *q, size_t ql, const char *f, size_t fl,
	const char *const *pn, const size_t *pnl, const char *const *pv, const size_t *pvl, size_t np) {
	return p_query_with_params_n(*c, q, ql, f, fl, pn, pnl, pv, pvl, np);
}
static chdb_result *reel_stream_query(chdb_connection *c, const char *q, size_t ql, const char *f, size_t fl,
	const char *const *pn, const size_t *pnl, const char *const *pv, const size_t *pvl, size_t np) {
	return p_stream_query_with_params_n(*c, q, ql, f, fl, pn, pnl, pv, pvl, np);
}
static chdb_result *reel_stream_fetch(chdb_connection *c, chdb_result *r) { return p_stream_fetch_result(*c, r); }
static void reel_stream_cancel(chdb_connection *c, chdb_result *r) { p_stream_cancel_query(*c, r); }
static void reel_destroy_result(chdb_result *r) { p_destroy_query_result(r); }
static char *reel_result_buffer(chdb_result *r) { return p_result_buffer(r); }
static size_t reel_result_length(chdb_result *r) { return p_result_length(r); }
static double reel_result_elapsed(chdb_result *r) { return p_result_elapsed(r); }
static uint64_t reel_result_rows_read(chdb_result *r) { return p_result_rows_read(r); }
static uint64_t reel_result_bytes_read(chdb_result *r) { return p_result_bytes_read(r); }
static uint64_t reel_result_storage_rows_read(chdb_result *r) { return p_result_storage_rows_read(r); }
static uint64_t reel_result_storage_bytes_read(chdb_result *r) { return p_result_storage_bytes_read(r); }
static uint64_t reel_result_rows_written(chdb_result *r) { return p_result_rows_written(r); }
static uint64_t reel_result_bytes_written(chdb_result *r) { return p_result_bytes_written(r); }
static const char *reel_result_error(chdb_result *r) { return p_result_error(r); }
static chdb_insert_stream reel_insert(chdb_connection *c, const char *q, size_t ql, const char *f, size_t fl,
	const char *const *pn, const size_t *pnl, const char *const *pv, const size_t *pvl, size_t np) {
	return p_stream_insert_with_params_n(*c, q, ql, f, fl, pn, pnl, pv, pvl, np);
}
static int reel_append(chdb_insert_stream s, const void *d, size_t n) { return p_stream_append(s, d, n); }
static chdb_result *reel_done(chdb_insert_stream s) { return p_stream_done(s); }
static void reel_cancel_insert(chdb_insert_stream s) { p_stream_cancel_insert(s); }
static const char *reel_insert_error(chdb_insert_stream s) { return p_stream_insert_error(s); }
static void reel_destroy_insert(chdb_insert_stream s) { p_destroy_insert_stream(s); }
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"unsafe"
)

// DefaultLibPath is where the engine library is looked for first. The
// install script sets it at link time (-X) to the library it installed.
var DefaultLibPath = ""

var loadMu sync.Mutex

// LibPath resolves the libchdb.so to load: the explicit path, REEL_CHDB_LIB,
// DefaultLibPath, then the place scripts/chdb.sh installs it under
// REEL_CACHE (default ~/.cache/reel).
func LibPath(explicit string) (string, error) {
	cands := []string{explicit, os.Getenv("REEL_CHDB_LIB"), DefaultLibPath}
	cache := os.Getenv("REEL_CACHE")
	if cache == "" {
		if h, err := os.UserHomeDir(); err == nil {
			cache = filepath.Join(h, ".cache", "reel")
		}
	}
	if cache != "" {
		cands = append(cands, filepath.Join(cache, "chdb", "node_modules", "@chdb", "lib-linux-x64-gnu", "libchdb.so"))
	}
	for _, c := range cands {
		if c == "" {
			continue
		}
		if st, err := os.Stat(c); err == nil && !st.IsDir() {
			return c, nil
		}
	}
	return "", errors.New("libchdb.so not found: run `bash scripts/chdb.sh install` or set REEL_CHDB_LIB")
}

// Load loads the engine library once per process. Later calls are no-ops.
func Load(path string) error {
	loadMu.Lock()
	defer loadMu.Unlock()
	p, err := LibPath(path)
	if err != nil {
		return err
	}
	cp := C.CString(p)
	defer C.free(unsafe.Pointer(cp))
	if e := C.reel_load(cp); e != nil {
		return fmt.Errorf("load %s: %s", p, C.GoString(e))
	}
	return nil
}

// EngineVersion is chdb_version() of the loaded library.
func EngineVersion() string { return C.GoString(C.reel_version()) }

// conn is one chDB connection. It runs one statement at a time; the pool
// guarantees that.
type conn struct {
	c *C.chdb_connection
}

// openEngine loads the library (lib may be "", see LibPath) and opens one
// connection on the data directory.
func openEngine(lib, path string) (engineConn, error) {
	if err := Load(lib); err != nil {
		return nil, err
	}
	return connect(path)
}

func connect(path string) (*conn, error) {
	args := []string{"reel-chdb", "--path=" + path}
	argv := make([]*C.char, len(args))
	for i, a := range args {
		argv[i] = C.CString(a)
	}
	defer func() {
		for _, p := range argv {
			C.free(unsafe.Pointer(p))
		}
	}()
	c := C.reel_connect(C.int(len(argv)), &argv[0])
	if c == nil {
		return nil, fmt.Errorf("chdb_connect --path=%s failed", path)
	}
	return &conn{c: c}, nil
}

func (c *conn) close() {
	if c.c != nil {
		C.reel_close(c.c)
		c.c = nil
	}
}

// cparams is C memory for a statement's query parameters.
type cparams struct {
	names, values []*C.char
	nlens, vlens  []C.size_t
	pn, pv        **C.char
	pnl, pvl      *C.size_t
	n             C.size_t
	free          func()
}

func newCParams(ps []Param) *cparams {
	p := &cparams{free: func() {}}
	if len(ps) == 0 {
		return p
	}
	// Arrays handed to C must live in C memory (cgo pointer rules).
	n := len(ps)
	ptrSize := C.size_t(unsafe.Sizeof(uintptr(0)))
	szSize := C.size_t(unsafe.Sizeof(C.size_t(0)))
	pn := (**C.char)(C.malloc(C.size_t(n) * ptrSize))
	pv := (**C.char)(C.malloc(C.size_t(n) * ptrSize))
	pnl := (*C.size_t)(C.malloc(C.size_t(n) * szSize))
	pvl := (*C.size_t)(C.malloc(C.size_t(n) * szSize))
	names := unsafe.Slice(pn, n)
	values := unsafe.Slice(pv, n)
	nl := unsafe.Slice(pnl, n)
	vl := unsafe.Slice(pvl, n)
	for i, x := range ps {
		names[i] = (*C.char)(C.CBytes([]byte(x.Name)))
		values[i] = (*C.char)(C.CBytes([]byte(x.Value)))
		nl[i] = C.size_t(len(x.Name))
		vl[i] = C.size_t(len(x.Value))
	}
	p.pn, p.pv, p.pnl, p.pvl, p.n = pn, pv, pnl, pvl, C.size_t(n)
	p.free = func() {
		for i := range n {
			C.free(unsafe.Pointer(names[i]))
			C.free(unsafe.Pointer(values[i]))
		}
		C.free(unsafe.Pointer(pn))
		C.free(unsafe.Pointer(pv))
		C.free(unsafe.Pointer(pnl))
		C.free(unsafe.Pointer(pvl))
	}
	return p
}

func resultStats(r *C.chdb_result) Stats {
	return Stats{
		Elapsed:      float64(C.reel_result_elapsed(r)),
		ResultRows:   uint64(C.reel_result_rows_read(r)), // "rows in the result set"
		ResultBytes:  uint64(C.reel_result_bytes_read(r)),
		ReadRows:     uint64(C.reel_result_storage_rows_read(r)),
		ReadBytes:    uint64(C.reel_result_storage_bytes_read(r)),
		WrittenRows:  uint64(C.reel_result_rows_written(r)),
		WrittenBytes: uint64(C.reel_result_bytes_written(r)),
	}
}

func resultErr(r *C.chdb_result) error {
	if e := C.reel_result_error(r); e != nil {
		if s := C.GoString(e); s != "" {
			return ParseError(s)
		}
	}
	return nil
}

// query runs one statement and returns its whole output.
func (c *conn) query(sql, format string, params []Param) ([]byte, Stats, error) {
	q := C.CString(sql)
	defer C.free(unsafe.Pointer(q))
	f := C.CString(format)
	defer C.free(unsafe.Pointer(f))
	p := newCParams(params)
	defer p.free()
	r := C.reel_query(c.c, q, C.size_t(len(sql)), f, C.size_t(len(format)), p.pn, p.pnl, p.pv, p.pvl, p.n)
	if r == nil {
		return nil, Stats{}, errors.New("chdb_query returned no result")
	}
	defer C.reel_destroy_result(r)
	if err := resultErr(r); err != nil {
		return nil, Stats{}, err
	}
	var out []byte
	if n := C.reel_result_length(r); n > 0 {
		out = C.GoBytes(unsafe.Pointer(C.reel_result_buffer(r)), C.int(n))
	}
	return out, resultStats(r), nil
}

// streamQuery runs one statement and hands its output to emit chunk by
// chunk, so a large result is never held whole. emit's slice is only valid
// during the call.
func (c *conn) streamQuery(sql, format string, params []Param, emit func([]byte) error) (Stats, error) {
	q := C.CString(sql)
	defer C.free(unsafe.Pointer(q))
	f := C.CString(format)
	defer C.free(unsafe.Pointer(f))
	p := newCParams(params)
	defer p.free()
	h := C.reel_stream_query(c.c, q, C.size_t(len(sql)), f, C.size_t(len(format)), p.pn, p.pnl, p.pv, p.pvl, p.n)
	if h == nil {
		return Stats{}, errors.New("chdb_stream_query returned no handle")
	}
	defer C.reel_destroy_result(h)
	if err := resultErr(h); err != nil {
		return Stats{}, err
	}
	var st Stats
	for {
		r := C.reel_stream_fetch(c.c, h)
		if r == nil {
			return st, errors.New("chdb_stream_fetch_result returned no result")
		}
		if err := resultErr(r); err != nil {
			C.reel_destroy_result(r)
			return st, err
		}
		n := C.reel_result_length(r)
		s := resultStats(r)
		st.add(s)
		if n == 0 {
			C.reel_destroy_result(r)
			return st, nil
		}
		err := emit(unsafe.Slice((*byte)(unsafe.Pointer(C.reel_result_buffer(r))), int(n)))
		C.reel_destroy_result(r)
		if err != nil {
			C.reel_stream_cancel(c.c, h)
			return st, err
		}
	}
}

// insert runs an INSERT statement without FORMAT clause, fed with
// format-encoded chunks pulled from next until it returns a nil chunk.
func (c *conn) insert(sql, format string, params []Param, next func() ([]byte, error)) (Stats, error) {
	q := C.CString(sql)
	defer C.free(unsafe.Pointer(q))
	f := C.CString(format)
	defer C.free(unsafe.Pointer(f))
	p := newCParams(params)
	defer p.free()
	s := C.reel_insert(c.c, q, C.size_t(len(sql)), f, C.size_t(len(format)), p.pn, p.pnl, p.pv, p.pvl, p.n)
	if s == nil {
		return Stats{}, errors.New("chdb_stream_insert returned no handle")
	}
	defer C.reel_destroy_insert(s)
	streamErr := func() error {
		if e := C.reel_insert_error(s); e != nil {
			if m := C.GoString(e); m != "" {
				return ParseError(m)
			}
		}
		return nil
	}
	if err := streamErr(); err != nil {
		return Stats{}, err
	}
	for {
		chunk, err := next()
		if err != nil {
			C.reel_cancel_insert(s)
			return Stats{}, err
		}
		if chunk == nil {
			break
		}
		if len(chunk) == 0 {
			continue
		}
		// chdb_stream_append copies; Go memory without Go pointers may be
		// passed for the duration of the call.
		if C.reel_append(s, unsafe.Pointer(&chunk[0]), C.size_t(len(chunk))) != 0 {
			if err := streamErr(); err != nil {
				return Stats{}, err
			}
			return Stats{}, errors.New("chdb_stream_append failed")
		}
	}
	r := C.reel_done(s)
	if r == nil {
		if err := streamErr(); err != nil {
			return Stats{}, err
		}
		return Stats{}, errors.New("chdb_stream_done returned no result")
	}
	defer C.reel_destroy_result(r)
	if err := resultErr(r); err != nil {
		return Stats{}, err
	}
	if err := streamErr(); err != nil {
		return Stats{}, err
	}
	return resultStats(r), nil
}
