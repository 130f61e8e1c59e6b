package chserver

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// httpOnlyParams are URL parameters the HTTP layer consumes; every other
// parameter (except param_*) is a setting for the statement.
var httpOnlyParams = map[string]bool{
	"query": true, "database": true, "default_format": true,
	"compress": true, "decompress": true, "enable_http_compression": true,
	"network_compression_method": true, "network_zstd_compression_level": true,
	"client_protocol_version": true, "query_id": true, "quota_key": true,
	"session_id": true, "session_timeout": true, "session_check": true,
	"user": true, "password": true, "buffer_size": true, "wait_end_of_query": true,
}

const (
	chunkSize = 1 << 20 // insert body chunks and response buffering
	// minRevisionCustomSerialization is DBMS_MIN_REVISION_WITH_CUSTOM_SERIALIZATION.
	minRevisionCustomSerialization = 54454
)

// request is one parsed HTTP request.
type request struct {
	sql      string
	insert   bool
	format   string    // input format of an insert
	data     io.Reader // insert data
	db       string
	settings map[string]string
	params   []Param
	// output
	outFormat       string
	clientRevision  uint64
	compressOut     bool   // compress=1: ClickHouse-compressed frames
	compressMethod  string // network_compression_method
	contentEncoding string // gzip/deflate/br/zstd when enable_http_compression=1
	queryID         string
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/ping" || r.URL.Path == "/replicas_status" {
		io.WriteString(w, "Ok.\n")
		return
	}
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.URL.Query().Get("query") == "" {
		io.WriteString(w, "Ok.\n")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	start := time.Now()
	user, err := s.authenticate(r)
	if err != nil {
		s.fail(w, r, "", err)
		return
	}
	req, cleanup, err := s.parse(r)
	defer cleanup()
	if req != nil && s.log.Enabled(r.Context(), slog.LevelDebug) {
		defer func() {
			s.log.Debug("request", "query_id", req.queryID, "insert", req.insert, "ms", time.Since(start).Milliseconds(), "sql", truncate(req.sql, 200))
		}()
	}
	if err == nil {
		err = allowed(user, req, s.defaults)
	}
	if err != nil {
		s.fail(w, r, "", err)
		return
	}
	w.Header().Set("X-ClickHouse-Query-Id", req.queryID)
	w.Header().Set("X-ClickHouse-Server-Display-Name", s.info.displayName)
	w.Header().Set("X-ClickHouse-Timezone", s.info.timezone)
	sess, err := s.acquire(r.Context())
	if err != nil {
		s.fail(w, r, req.sql, newException(394, "query was cancelled while waiting for a connection: %v", err))
		return
	}
	defer s.release(sess)
	if err := sess.prepare(req.db, req.settings); err != nil {
		s.fail(w, r, req.sql, err)
		return
	}
	if req.insert {
		st, err := s.runInsert(http.NewResponseController(w), sess, req)
		if err != nil {
			s.fail(w, r, req.sql, err)
			return
		}
		st.Elapsed = time.Since(start).Seconds()
		w.Header().Set("X-ClickHouse-Summary", summary(st))
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return
	}
	s.runQuery(w, r, sess, req, start)
}

// parse reads the statement, settings and input of a request.
func (s *Server) parse(r *http.Request) (*request, func(), error) {
	cleanup := func() {}
	q := r.URL.Query()
	req := &request{
		db:             q.Get("database"),
		settings:       map[string]string{},
		outFormat:      q.Get("default_format"),
		compressOut:    q.Get("compress") == "1",
		compressMethod: q.Get("network_compression_method"),
		queryID:        q.Get("query_id"),
	}
	if h := r.Header.Get("X-ClickHouse-Database"); h != "" && req.db == "" {
		req.db = h
	}
	if h := r.Header.Get("X-ClickHouse-Format"); h != "" && req.outFormat == "" {
		req.outFormat = h
	}
	if req.outFormat == "" {
		req.outFormat = "TabSeparated"
	}
	if req.queryID == "" {
		req.queryID = newID()
	}
	if v := q.Get("client_protocol_version"); v != "" {
		req.clientRevision, _ = strconv.ParseUint(v, 10, 64)
	}
	if q.Get("enable_http_compression") == "1" {
		req.contentEncoding = responseEncoding(r.Header.Get("Accept-Encoding"))
	}
	for k, vs := range q {
		if len(vs) == 0 {
			continue
		}
		v := vs[len(vs)-1]
		switch {
		case strings.HasPrefix(k, "param_"):
			req.params = append(req.params, Param{Name: strings.TrimPrefix(k, "param_"), Value: v})
		case httpOnlyParams[k]:
		case !validSettingName(k):
			return nil, cleanup, newException(115, "Unknown setting '%s'", k)
		default:
			req.settings[k] = v
		}
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		return nil, cleanup, newException(48, "external tables (multipart/form-data requests) are not supported by reel-chdb")
	}

	var body io.Reader = http.NoBody
	if r.Body != nil && r.Method == http.MethodPost {
		dec, done, err := decodeBody(r.Header.Get("Content-Encoding"), r.Body)
		if err != nil {
			return nil, cleanup, err
		}
		body = dec
		cleanup = done
		if q.Get("decompress") == "1" {
			fr := newFrameReader(body)
			body = fr
			cleanup = func() { fr.Close(); done() }
		}
	}

	urlQuery := q.Get("query")
	if urlQuery != "" {
		if stmt, format, inline, ok := insertParts(urlQuery); ok {
			req.sql, req.insert, req.format = stmt, true, format
			req.data = io.MultiReader(strings.NewReader(inline), body)
			return req, cleanup, nil
		}
	}
	// The statement (or the rest of it) is in the body. Read what a
	// statement can be; an INSERT's data after FORMAT is streamed instead.
	const headSize = 256 << 10
	head, err := io.ReadAll(io.LimitReader(body, headSize))
	if err != nil {
		return nil, cleanup, readErrOf(err)
	}
	eof := len(head) < headSize
	text := string(head)
	if urlQuery != "" {
		if len(head) > 0 {
			text = urlQuery + "\n" + text
		} else {
			text = urlQuery
		}
	}
	if stmt, format, inline, ok := insertParts(text); ok && (eof || len(inline) > 0) {
		req.sql, req.insert, req.format = stmt, true, format
		req.data = io.MultiReader(strings.NewReader(inline), body)
		return req, cleanup, nil
	}
	if !eof {
		rest, err := io.ReadAll(io.LimitReader(body, int64(s.cfg.MaxQuerySize)))
		if err != nil {
			return nil, cleanup, readErrOf(err)
		}
		if len(head)+len(rest) >= s.cfg.MaxQuerySize {
			return nil, cleanup, newException(codeBadArguments, "query is larger than %d bytes", s.cfg.MaxQuerySize)
		}
		text += string(rest)
	}
	if strings.TrimSpace(text) == "" {
		return nil, cleanup, newException(62, "Empty query")
	}
	req.sql = text
	return req, cleanup, nil
}

func readErrOf(err error) error {
	var ex *Exception
	if errors.As(err, &ex) {
		return ex
	}
	return newException(codeCannotReadAllData, "cannot read request body: %v", err)
}

// runInsert streams the request data into the engine in chunks.
func (s *Server) runInsert(rc *http.ResponseController, sess *session, req *request) (Stats, error) {
	buf := make([]byte, chunkSize)
	var readErr error
	st, err := sess.c.insert(req.sql, req.format, req.params, func() ([]byte, error) {
		// Not supported by every ResponseWriter (tests); then unbounded.
		_ = rc.SetReadDeadline(time.Now().Add(s.cfg.ReceiveTimeout))
		n, err := io.ReadFull(req.data, buf)
		if n > 0 {
			if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
				readErr = err
			}
			return buf[:n], nil
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			if readErr != nil {
				return nil, readErrOf(readErr)
			}
			return nil, nil
		}
		return nil, readErrOf(err)
	})
	return st, err
}

// runQuery executes a statement and writes its output.
func (s *Server) runQuery(w http.ResponseWriter, r *http.Request, sess *session, req *request, start time.Time) {
	format := req.outFormat
	if f := formatClause(req.sql); f != "" {
		format = f
	}
	out, err := newResponse(w, req, format)
	if err != nil {
		s.fail(w, r, req.sql, err)
		return
	}
	// The hello carries the context's query parameters when the client's
	// first statement on a connection has some (clickhouse.WithParameters):
	// it must be answered here all the same, or the engine's revision-0
	// block reaches a client that decodes at its own revision ("failed to
	// query server hello … block decode").
	if strings.EqualFold(format, "Native") && isHello(req.sql) {
		if _, err := out.Write(s.helloBlock(req.clientRevision)); err != nil {
			return
		}
		out.finish(Stats{ResultRows: 1, Elapsed: time.Since(start).Seconds()})
		return
	}
	var st Stats
	if streamable(req.sql) {
		st, err = sess.c.streamQuery(req.sql, req.outFormat, req.params, func(b []byte) error {
			_, err := out.Write(b)
			return err
		})
		if err != nil && out.written == 0 && strings.Contains(err.Error(), "Streaming query is not supported") {
			st, err = s.bufferedQuery(sess, req, out)
		}
	} else {
		st, err = s.bufferedQuery(sess, req, out)
	}
	if err != nil {
		if !out.committed {
			s.fail(w, r, req.sql, err)
			return
		}
		s.log.Warn("query failed after its response started", "query_id", req.queryID, "err", err)
		out.abort(err)
		return
	}
	st.Elapsed = time.Since(start).Seconds()
	out.finish(st)
}

func (s *Server) bufferedQuery(sess *session, req *request, out *response) (Stats, error) {
	b, st, err := sess.c.query(req.sql, req.outFormat, req.params)
	if err != nil {
		return st, err
	}
	_, err = out.Write(b)
	return st, err
}

// streamable reports statements that produce rows, which chDB can stream;
// everything else (DDL, SET, …) runs buffered.
func streamable(sql string) bool {
	switch firstKeyword(sql) {
	case "SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS":
		return true
	}
	return strings.HasPrefix(strings.TrimSpace(sql), "(")
}

// fail answers with an error the way ClickHouse does: the exception text as
// body, its code in X-ClickHouse-Exception-Code.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, sql string, err error) {
	var ex *Exception
	if !errors.As(err, &ex) {
		ex = ParseError(err.Error())
	}
	s.log.Debug("query failed", "code", ex.Code, "err", ex.Text, "sql", truncate(sql, 200))
	h := w.Header()
	h.Del("Content-Encoding")
	h.Set("Content-Type", "text/plain; charset=UTF-8")
	h.Set("X-ClickHouse-Exception-Code", strconv.Itoa(ex.Code))
	body := ex.Text
	if !strings.HasSuffix(body, "\n") {
		body += "\n"
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(httpStatus(ex.Code))
	io.WriteString(w, body)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func summary(st Stats) string {
	return fmt.Sprintf(`{"read_rows":"%d","read_bytes":"%d","written_rows":"%d","written_bytes":"%d","total_rows_to_read":"%d","result_rows":"%d","result_bytes":"%d","elapsed_ns":"%d"}`,
		st.ReadRows, st.ReadBytes, st.WrittenRows, st.WrittenBytes, st.ReadRows, st.ResultRows, st.ResultBytes, int64(st.Elapsed*1e9))
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// isHello recognizes clickhouse-go's connection check,
// "SELECT displayName(), version(), revision(), timezone()".
func isHello(sql string) bool {
	return strings.EqualFold(strings.Join(strings.Fields(sql), " "), "SELECT displayName(), version(), revision(), timezone()")
}

// helloBlock answers the connection check. chDB writes Native output as
// protocol revision 0 (no block info, no serialization flags) whatever the
// client asks for, and clickhouse-go decodes every later result with the
// revision this answer reports. So the answer itself is encoded at the
// client's revision but reports revision 0, which keeps the two in step.
func (s *Server) helloBlock(clientRevision uint64) []byte {
	var b bytes.Buffer
	uv := func(v uint64) { b.Write(binary.AppendUvarint(nil, v)) }
	str := func(v string) { uv(uint64(len(v))); b.WriteString(v) }
	if clientRevision > 0 {
		// BlockInfo: field 1 is_overflows=false, field 2 bucket_num=-1, end.
		uv(1)
		b.WriteByte(0)
		uv(2)
		b.Write([]byte{0xff, 0xff, 0xff, 0xff})
		uv(0)
	}
	uv(4) // columns
	uv(1) // rows
	col := func(name, typ string, data func()) {
		str(name)
		str(typ)
		if clientRevision >= minRevisionCustomSerialization {
			b.WriteByte(0)
		}
		data()
	}
	col("displayName()", "String", func() { str(s.info.displayName) })
	col("version()", "String", func() { str(s.info.version) })
	col("revision()", "UInt32", func() { b.Write([]byte{0, 0, 0, 0}) })
	col("timezone()", "String", func() { str(s.info.timezone) })
	return b.Bytes()
}

// response buffers the first chunkSize bytes of output so that small
// results go out with Content-Length and a complete X-ClickHouse-Summary,
// and a failure before that point is a proper error response. Larger
// results stream; a failure after that is reported in-band, framed as
// ClickHouse frames it.
type response struct {
	w         http.ResponseWriter
	req       *request
	buf       bytes.Buffer // encoded output not yet sent
	committed bool
	written   int64 // raw bytes accepted
	tag       string
	chain     io.Writer      // raw bytes in → encoded bytes into sink
	frames    *frameWriter   // compress=1
	encoder   io.WriteCloser // Content-Encoding
	sinkErr   error
}

type sinkWriter struct{ r *response }

func (s sinkWriter) Write(p []byte) (int, error) { return s.r.sink(p) }

func newResponse(w http.ResponseWriter, req *request, format string) (*response, error) {
	o := &response{w: w, req: req, tag: newTag()}
	var next io.Writer = sinkWriter{o}
	if req.contentEncoding != "" {
		enc, err := encodeBody(req.contentEncoding, next)
		if err != nil {
			return nil, err
		}
		o.encoder = enc
		next = enc
	}
	if req.compressOut {
		fw, err := newFrameWriter(next, req.compressMethod)
		if err != nil {
			return nil, err
		}
		o.frames = fw
		next = fw
	}
	o.chain = next
	h := w.Header()
	h.Set("X-ClickHouse-Format", format)
	h.Set("Content-Type", contentType(format))
	h.Set("X-ClickHouse-Exception-Tag", o.tag)
	if req.contentEncoding != "" {
		h.Set("Content-Encoding", req.contentEncoding)
	}
	return o, nil
}

func (o *response) Write(p []byte) (int, error) {
	if o.sinkErr != nil {
		return 0, o.sinkErr
	}
	// Frames are at most chunkSize so a reader never needs a huge buffer.
	total := len(p)
	for len(p) > 0 {
		n := min(len(p), chunkSize)
		if _, err := o.chain.Write(p[:n]); err != nil {
			return 0, err
		}
		o.written += int64(n)
		p = p[n:]
	}
	return total, o.sinkErr
}

func (o *response) sink(p []byte) (int, error) {
	if !o.committed {
		o.buf.Write(p)
		if o.buf.Len() < chunkSize {
			return len(p), nil
		}
		o.commit("")
		_, err := o.w.Write(o.buf.Bytes())
		o.buf.Reset()
		if err != nil {
			o.sinkErr = err
			return 0, err
		}
		return len(p), nil
	}
	if _, err := o.w.Write(p); err != nil {
		o.sinkErr = err
		return 0, err
	}
	return len(p), nil
}

func (o *response) commit(contentLength string) {
	o.committed = true
	if contentLength != "" {
		o.w.Header().Set("Content-Length", contentLength)
	}
	o.w.WriteHeader(http.StatusOK)
}

// finish flushes the encoders and sends what is still buffered.
func (o *response) finish(st Stats) {
	if o.encoder != nil {
		if err := o.encoder.Close(); err != nil {
			return
		}
	}
	if o.committed {
		return
	}
	o.w.Header().Set("X-ClickHouse-Summary", summary(st))
	o.commit(strconv.Itoa(o.buf.Len()))
	_, _ = o.w.Write(o.buf.Bytes())
}

// abort reports err inside a response already under way, in ClickHouse's
// framing, which clickhouse-go detects and turns into an *Exception.
func (o *response) abort(err error) {
	var ex *Exception
	if !errors.As(err, &ex) {
		ex = ParseError(err.Error())
	}
	msg := ex.Text
	block := fmt.Sprintf("\r\n__exception__\r\n%s\r\n%s\n%d %s\r\n__exception__\r\n", o.tag, msg, len(msg), o.tag)
	if o.encoder != nil {
		// The client decodes Content-Encoding before it looks for the
		// marker, so the block goes through the encoder, not the frames.
		_, _ = io.WriteString(o.encoder, block)
		_ = o.encoder.Close()
	} else {
		_, _ = io.WriteString(o.w, block)
	}
	if f, ok := o.w.(http.Flusher); ok {
		f.Flush()
	}
}

func newTag() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	var b [16]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:])
}

func contentType(format string) string {
	switch strings.ToLower(format) {
	case "tabseparated", "tsv", "tabseparatedwithnames", "tsvwithnames", "tabseparatedwithnamesandtypes", "tsvwithnamesandtypes", "tabseparatedraw", "tsvraw":
		return "text/tab-separated-values; charset=UTF-8"
	case "csv", "csvwithnames", "csvwithnamesandtypes":
		return "text/csv; charset=UTF-8; header=absent"
	case "json", "jsoncompact", "jsoneachrow", "jsoncompacteachrow", "jsonstrings", "jsonlines", "ndjson":
		return "application/json; charset=UTF-8"
	case "native", "rowbinary", "rowbinarywithnames", "rowbinarywithnamesandtypes", "parquet", "arrow", "arrowstream", "orc", "avro":
		return "application/octet-stream"
	}
	return "text/plain; charset=UTF-8"
}

var _ http.Handler = (*Server)(nil)
