package schemas

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
)

// Codec turns Events into Kafka records and back. It is safe for concurrent
// use; build one per process and share it.
type Codec struct {
	cat *Catalog
	api avro.API
	reg *sr.Client // nil: registry-free single-object encoding

	// bySOE maps every catalog version's fingerprint to its schema resolved
	// against the current version. Built once in NewCodec, read-only after.
	bySOE map[uint64]*writerSchema

	byID       sync.Map // registry schema ID (int) → *writerSchema
	currentIDs sync.Map // event type → registry ID of its current version
	idMu       sync.Mutex

	readers sync.Pool // *avro.Reader
	writers sync.Pool // *avro.Writer
}

// writerSchema is a writer version ready to decode into the current struct.
type writerSchema struct {
	t        *EventType
	version  int         // 0: unknown to the catalog (newer, from the registry)
	resolved avro.Schema // writer→reader composite, or the reader itself
}

// CodecOpt configures a Codec.
type CodecOpt func(*codecCfg)

type codecCfg struct {
	reg *sr.Client
}

// WithRegistry switches encoding to Confluent framing (magic 0 + 4-byte
// schema ID) with IDs looked up in the registry under the subject
// Catalog.Subject (the schemas must be registered, see Register). Decoding
// reads both framings either way; with a registry it also fetches unknown
// IDs, so events of newer compatible versions still decode. Default: no
// registry, Avro single-object encoding.
func WithRegistry(cl *sr.Client) CodecOpt { return func(c *codecCfg) { c.reg = cl } }

// NewCodec builds a codec for the catalog. It resolves every version of
// every event type against the current one up front, so Decode does no
// schema work, and it checks that each Go struct encodes with its current
// schema.
func NewCodec(cat *Catalog, opts ...CodecOpt) (*Codec, error) {
	var cfg codecCfg
	for _, o := range opts {
		o(&cfg)
	}
	api := avro.Config{}.Freeze()
	c := &Codec{cat: cat, api: api, reg: cfg.reg, bySOE: map[uint64]*writerSchema{}}
	c.readers.New = func() any { return avro.NewReader(nil, 0, avro.WithReaderConfig(api)) }
	c.writers.New = func() any { return avro.NewWriter(nil, 512, avro.WithWriterConfig(api)) }
	for _, name := range cat.names {
		t := cat.types[name]
		if t.spec.newPayload == nil {
			return nil, fmt.Errorf("schemas: event type %s has no Go struct in the catalog table", name)
		}
		cur := t.Current()
		if _, err := api.Marshal(cur.Schema, t.spec.newPayload()); err != nil {
			return nil, fmt.Errorf("schemas: Go struct %T does not match %s: %w", t.spec.newPayload(), cur.Path, err)
		}
		for _, v := range t.Versions {
			ws, err := resolve(t, v.Version, cur.Schema, v.Schema)
			if err != nil {
				return nil, fmt.Errorf("schemas: %s cannot be read as %s: %w", v.Path, cur.Path, err)
			}
			c.bySOE[v.Fingerprint] = ws
		}
	}
	return c, nil
}

func resolve(t *EventType, version int, reader, writer avro.Schema) (*writerSchema, error) {
	if reader == writer {
		return &writerSchema{t: t, version: version, resolved: reader}, nil
	}
	// A fresh checker per pair: its cache is keyed by canonical
	// fingerprints, which ignore defaults and aliases.
	rs, err := avro.NewSchemaCompatibility().Resolve(reader, writer)
	if err != nil {
		return nil, err
	}
	return &writerSchema{t: t, version: version, resolved: rs}, nil
}

// Catalog returns the codec's catalog.
func (c *Codec) Catalog() *Catalog { return c.cat }

// Encode validates ev and turns it into a record for the event type's topic:
// Key = aggregate ID, Value = framed Avro of the CURRENT version (ev.Version
// is ignored), Headers = the envelope. Missing ID (UUIDv7), OccurredAt (now),
// Type and AggregateID (from the payload) are filled in. Errors wrap
// ErrUnknownEventType, ErrEmptyAggregateID, ErrSchemaMismatch or, with a
// registry, ErrUnknownSchema (current version not registered).
func (c *Codec) Encode(ctx context.Context, ev Event) (*kgo.Record, error) {
	ev, t, err := c.Prepare(ev)
	if err != nil {
		return nil, err
	}
	cur := &t.Versions[len(t.Versions)-1]
	w := c.writers.Get().(*avro.Writer)
	defer c.writers.Put(w)
	w.Reset(nil)
	w.Error = nil
	if c.reg == nil {
		var hdr [soeHeaderLen]byte
		hdr[0], hdr[1] = soeMagic0, soeMagic1
		binary.LittleEndian.PutUint64(hdr[2:], cur.Fingerprint)
		_, _ = w.Write(hdr[:])
	} else {
		id, err := c.currentID(ctx, t, cur)
		if err != nil {
			return nil, err
		}
		var hdr [confluentHeaderLen]byte
		hdr[0] = confluentMagic
		binary.BigEndian.PutUint32(hdr[1:], uint32(id))
		_, _ = w.Write(hdr[:])
	}
	w.WriteVal(cur.Schema, ev.Payload)
	if w.Error != nil {
		return nil, fmt.Errorf("%w: %s event %s: %v", ErrSchemaMismatch, t.Name, ev.ID, w.Error)
	}
	value := append([]byte(nil), w.Buffer()...)

	headers := make([]kgo.RecordHeader, 0, 7)
	headers = append(headers,
		kgo.RecordHeader{Key: HeaderType, Value: []byte(t.Name)},
		kgo.RecordHeader{Key: HeaderVersion, Value: strconv.AppendInt(nil, int64(cur.Version), 10)},
		kgo.RecordHeader{Key: HeaderEventID, Value: []byte(ev.ID)},
		kgo.RecordHeader{Key: HeaderAggregateID, Value: []byte(ev.AggregateID)},
		kgo.RecordHeader{Key: HeaderOccurredAt, Value: ev.OccurredAt.UTC().AppendFormat(nil, time.RFC3339Nano)},
	)
	if ev.CorrelationID != "" {
		headers = append(headers, kgo.RecordHeader{Key: HeaderCorrelationID, Value: []byte(ev.CorrelationID)})
	}
	if ev.CausationID != "" {
		headers = append(headers, kgo.RecordHeader{Key: HeaderCausationID, Value: []byte(ev.CausationID)})
	}
	return &kgo.Record{
		Topic:   t.Domain.Topic,
		Key:     []byte(ev.AggregateID),
		Value:   value,
		Headers: headers,
	}, nil
}

// Prepare fills in and checks an event the way Encode does, without
// encoding: Payload becomes a pointer to a catalog struct, Type,
// AggregateID, ID and OccurredAt are set, Version is the current version.
func (c *Codec) Prepare(ev Event) (Event, *EventType, error) {
	p, err := asPayload(ev.Payload)
	if err != nil {
		return ev, nil, fmt.Errorf("%w: event %q (%s): %v", ErrSchemaMismatch, ev.ID, ev.Type, err)
	}
	if p != nil {
		if ev.Type == "" {
			ev.Type = p.EventType()
		} else if ev.Type != p.EventType() {
			return ev, nil, fmt.Errorf("%w: event type %s but payload %T is %s", ErrSchemaMismatch, ev.Type, p, p.EventType())
		}
		ev.Payload = p
	}
	t := c.cat.types[ev.Type]
	if t == nil || t.spec.newPayload == nil {
		return ev, nil, fmt.Errorf("%w: %q is not in the catalog", ErrUnknownEventType, ev.Type)
	}
	if p == nil {
		return ev, nil, fmt.Errorf("%w: %s event has payload %T, want %T", ErrSchemaMismatch, ev.Type, ev.Payload, t.spec.newPayload())
	}
	if want := reflect.TypeOf(t.spec.newPayload()); reflect.TypeOf(p) != want {
		return ev, nil, fmt.Errorf("%w: %s event has payload %T, want %v", ErrSchemaMismatch, ev.Type, p, want)
	}
	if ev.AggregateID == "" {
		ev.AggregateID = p.AggregateID()
	}
	if ev.AggregateID == "" {
		return ev, nil, fmt.Errorf("%w: %s event %q", ErrEmptyAggregateID, ev.Type, ev.ID)
	}
	if p.AggregateID() != ev.AggregateID {
		return ev, nil, fmt.Errorf("%w: %s event aggregate ID %q but payload says %q", ErrSchemaMismatch, ev.Type, ev.AggregateID, p.AggregateID())
	}
	if ev.ID == "" {
		ev.ID = newID()
	}
	if ev.OccurredAt.IsZero() {
		ev.OccurredAt = time.Now()
	}
	ev.OccurredAt = ev.OccurredAt.UTC()
	ev.Version = t.Current().Version
	return ev, t, nil
}

// asPayload accepts a pointer to a catalog struct or the struct itself.
func asPayload(v any) (Payload, error) {
	switch p := v.(type) {
	case nil:
		return nil, errors.New("nil payload")
	case Payload:
		if reflect.ValueOf(p).IsNil() {
			return nil, errors.New("nil payload pointer")
		}
		return p, nil
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Struct {
		ptr := reflect.New(rv.Type())
		ptr.Elem().Set(rv)
		if p, ok := ptr.Interface().(Payload); ok {
			return p, nil
		}
	}
	return nil, nil
}

func newID() string {
	if id, err := uuid.NewV7(); err == nil {
		return id.String()
	}
	return uuid.NewString()
}

// Decode turns a record into an Event whose Payload is a pointer to the
// current version's struct, whatever version wrote it. Every error wraps
// exactly one of ErrMissingHeader, ErrUnknownEventType, ErrUnknownSchema,
// ErrMalformed or ErrUpcast and names the record's topic/partition@offset.
func (c *Codec) Decode(ctx context.Context, r *kgo.Record) (Event, error) {
	var ev Event
	var typ, ver, id, agg, occ []byte
	var hasAgg bool
	for i := range r.Headers {
		h := &r.Headers[i]
		switch h.Key {
		case HeaderType:
			typ = h.Value
		case HeaderVersion:
			ver = h.Value
		case HeaderEventID:
			id = h.Value
		case HeaderAggregateID:
			agg, hasAgg = h.Value, true
		case HeaderOccurredAt:
			occ = h.Value
		case HeaderCorrelationID:
			ev.CorrelationID = string(h.Value)
		case HeaderCausationID:
			ev.CausationID = string(h.Value)
		}
	}
	if len(typ) == 0 {
		return ev, decodeErr(ErrMissingHeader, r, "no %s header", HeaderType)
	}
	t := c.cat.types[string(typ)]
	if t == nil || t.spec.newPayload == nil {
		return ev, decodeErr(ErrUnknownEventType, r, "%q is not in the catalog", typ)
	}
	ev.Type = t.Name
	if len(id) == 0 {
		return ev, decodeErr(ErrMissingHeader, r, "%s event without %s header", t.Name, HeaderEventID)
	}
	ev.ID = string(id)
	if len(r.Key) == 0 {
		return ev, decodeErr(ErrMissingHeader, r, "%s event %s has no record key (aggregate ID)", t.Name, ev.ID)
	}
	ev.AggregateID = string(r.Key)
	if hasAgg && string(agg) != ev.AggregateID {
		return ev, decodeErr(ErrMissingHeader, r, "%s header %q differs from record key %q", HeaderAggregateID, agg, r.Key)
	}
	if len(occ) == 0 {
		return ev, decodeErr(ErrMissingHeader, r, "%s event %s without %s header", t.Name, ev.ID, HeaderOccurredAt)
	}
	at, err := time.Parse(time.RFC3339Nano, string(occ))
	if err != nil {
		return ev, decodeErr(ErrMissingHeader, r, "%s header %q: %v", HeaderOccurredAt, occ, err)
	}
	ev.OccurredAt = at.UTC()
	headerVersion := 0
	if len(ver) > 0 {
		if headerVersion, err = strconv.Atoi(string(ver)); err != nil || headerVersion < 1 {
			return ev, decodeErr(ErrMissingHeader, r, "%s header %q is not a version number", HeaderVersion, ver)
		}
	}

	ws, body, err := c.writerOf(ctx, t, r)
	if err != nil {
		return ev, err
	}
	ev.Version = ws.version
	if ev.Version == 0 {
		ev.Version = headerVersion
	}

	p := t.spec.newPayload()
	rd := c.readers.Get().(*avro.Reader)
	rd.Reset(body)
	rd.Error = nil
	rd.ReadVal(ws.resolved, p)
	if rd.Error == nil {
		rd.Peek() // io.EOF when the body was consumed exactly
		if rd.Error == nil {
			rd.Error = errors.New("trailing bytes after the record")
		} else if errors.Is(rd.Error, io.EOF) {
			rd.Error = nil
		}
	}
	derr := rd.Error
	rd.Error = nil
	rd.Reset(nil)
	c.readers.Put(rd)
	if derr != nil {
		return ev, decodeErr(ErrMalformed, r, "%s v%d event %s: %v", t.Name, ev.Version, ev.ID, derr)
	}
	if p.AggregateID() != ev.AggregateID {
		return ev, decodeErr(ErrMalformed, r, "%s event %s: payload aggregate ID %q differs from record key %q", t.Name, ev.ID, p.AggregateID(), ev.AggregateID)
	}
	ev.Payload = p
	if t.spec.upcast != nil && ws.version != 0 && ws.version < len(t.Versions) {
		if err := t.spec.upcast(ws.version, &ev); err != nil {
			return ev, decodeErr(ErrUpcast, r, "%s v%d event %s: %v", t.Name, ws.version, ev.ID, err)
		}
	}
	return ev, nil
}

// writerOf finds the writer schema from the value's framing and returns it
// with the Avro body.
func (c *Codec) writerOf(ctx context.Context, t *EventType, r *kgo.Record) (*writerSchema, []byte, error) {
	v := r.Value
	switch {
	case len(v) >= soeHeaderLen && v[0] == soeMagic0 && v[1] == soeMagic1:
		fp := binary.LittleEndian.Uint64(v[2:soeHeaderLen])
		ws := c.bySOE[fp]
		if ws == nil {
			return nil, nil, decodeErr(ErrUnknownSchema, r, "%s: no catalog schema has fingerprint %016x", t.Name, fp)
		}
		if ws.t != t {
			return nil, nil, decodeErr(ErrMalformed, r, "header says %s but the payload was written with %s v%d", t.Name, ws.t.Name, ws.version)
		}
		return ws, v[soeHeaderLen:], nil
	case len(v) >= confluentHeaderLen && v[0] == confluentMagic:
		id := int(binary.BigEndian.Uint32(v[1:confluentHeaderLen]))
		ws, err := c.schemaByID(ctx, t, id, r)
		if err != nil {
			return nil, nil, err
		}
		return ws, v[confluentHeaderLen:], nil
	case len(v) == 0:
		return nil, nil, decodeErr(ErrMalformed, r, "%s: empty value", t.Name)
	default:
		return nil, nil, decodeErr(ErrMalformed, r, "%s: value is neither single-object encoded (C3 01) nor Confluent framed (00), starts with %#x", t.Name, v[0])
	}
}

func (c *Codec) schemaByID(ctx context.Context, t *EventType, id int, r *kgo.Record) (*writerSchema, error) {
	if ws, ok := c.byID.Load(id); ok {
		ws := ws.(*writerSchema)
		if ws.t != t {
			return nil, decodeErr(ErrMalformed, r, "header says %s but registry schema ID %d is %s", t.Name, id, ws.t.Name)
		}
		return ws, nil
	}
	if c.reg == nil {
		return nil, decodeErr(ErrUnknownSchema, r, "%s: Confluent-framed schema ID %d but the codec has no registry", t.Name, id)
	}
	// One fetch per ID even under concurrent decodes of a new schema.
	c.idMu.Lock()
	if _, ok := c.byID.Load(id); ok {
		c.idMu.Unlock()
		return c.schemaByID(ctx, t, id, r) // another decode fetched it meanwhile
	}
	defer c.idMu.Unlock()
	s, err := c.reg.SchemaByID(ctx, id)
	if err != nil {
		return nil, decodeErr(ErrUnknownSchema, r, "%s: registry schema ID %d: %v", t.Name, id, err)
	}
	sch, err := avro.ParseWithCache(s.Schema, "", &avro.SchemaCache{})
	if err != nil {
		return nil, decodeErr(ErrUnknownSchema, r, "%s: registry schema ID %d does not parse: %v", t.Name, id, err)
	}
	fp, err := fingerprint(sch)
	if err != nil {
		return nil, decodeErr(ErrUnknownSchema, r, "%s: registry schema ID %d: %v", t.Name, id, err)
	}
	ws := c.bySOE[fp]
	if ws == nil {
		// A version newer than this catalog (or foreign): readable when
		// compatible with our current version.
		named, ok := sch.(avro.NamedSchema)
		if !ok || named.FullName() != t.Name {
			return nil, decodeErr(ErrUnknownSchema, r, "registry schema ID %d is not a %s record", id, t.Name)
		}
		ws, err = resolve(t, 0, t.Current().Schema, sch)
		if err != nil {
			return nil, decodeErr(ErrUnknownSchema, r, "%s: registry schema ID %d cannot be read as v%d: %v", t.Name, id, t.Current().Version, err)
		}
	}
	if ws.t != t {
		return nil, decodeErr(ErrMalformed, r, "header says %s but registry schema ID %d is %s", t.Name, id, ws.t.Name)
	}
	c.byID.Store(id, ws)
	return ws, nil
}

// currentID is the registry ID of an event type's current version.
func (c *Codec) currentID(ctx context.Context, t *EventType, cur *SchemaVersion) (int, error) {
	if id, ok := c.currentIDs.Load(t.Name); ok {
		return id.(int), nil
	}
	subject := c.cat.Subject(t.Name)
	ss, err := c.reg.LookupSchema(ctx, subject, sr.Schema{Schema: cur.Text, Type: sr.TypeAvro})
	if err != nil {
		return 0, fmt.Errorf("%w: %s v%d is not registered under subject %s (run `reel schemas register`): %v", ErrUnknownSchema, t.Name, cur.Version, subject, err)
	}
	c.currentIDs.Store(t.Name, ss.ID)
	c.byID.LoadOrStore(ss.ID, c.bySOE[cur.Fingerprint])
	return ss.ID, nil
}

func decodeErr(kind error, r *kgo.Record, format string, args ...any) error {
	return fmt.Errorf("%w: %s at %s", kind, fmt.Sprintf(format, args...), where(r))
}

func where(r *kgo.Record) string {
	if r.Topic == "" {
		return "record (no topic)"
	}
	return r.Topic + "/" + strconv.Itoa(int(r.Partition)) + "@" + strconv.FormatInt(r.Offset, 10)
}
