package schemas

import (
	"fmt"
	"sync"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"
)

// Codec turns Events into Kafka records and back. It is safe for concurrent
// use; build one per process and share it.
type Codec struct {
	cat      *Catalog
	api      avro.API
	reg      *sr.Client // nil: registry-free single-object encoding
	bindings map[string]Binding

	// bySOE maps every catalog version's fingerprint to its schema resolved
	// against the current version of the type it reads as. Built once in
	// NewCodec, read-only after; so are plain (topic → its writer).
	bySOE map[uint64]*writer
	plain map[string]*writer

	byID       sync.Map // registry schema ID (int) → *idEntry
	currentIDs sync.Map // event type → registry ID of its current version
	idMu       sync.Mutex

	readers sync.Pool // *avro.Reader
	writers sync.Pool // *avro.Writer
}

// writer is one writer schema ready to decode: how its bytes are read and
// as which type.
type writer struct {
	t        *EventType         // catalog type it reads as; nil: a registry-only type (read as itself)
	name     string             // the writer record's full name
	version  int                // catalog version; 0 when the writer is not one (newer, foreign)
	reader   *avro.RecordSchema // what the payload is read as
	resolved avro.Schema        // writer→reader composite, or the reader itself
	desc     string             // where the writer came from, for errors
}

// typeName is the event type the writer's events carry.
func (w *writer) typeName() string {
	if w.t != nil {
		return w.t.Name
	}
	return w.name
}

// CodecOpt configures a Codec.
type CodecOpt func(*codecCfg)

type codecCfg struct {
	reg      *sr.Client
	bindings []Binding
}

// WithRegistry switches encoding to Confluent framing (magic 0 + 4-byte
// schema ID) with IDs looked up in the registry under Catalog.Subject (the
// schemas must be registered, see Register). Decoding reads every framing
// either way; with a registry it also fetches writer schemas by ID —
// whatever subject the producer registered them under — so events of
// newer compatible versions and of foreign producers decode. Default: no
// registry, Avro single-object encoding.
func WithRegistry(cl *sr.Client) CodecOpt { return func(c *codecCfg) { c.reg = cl } }

// WithBindings binds catalog types to Go structs and upcasters (see
// Binding). Default: none, every payload is a *Record.
func WithBindings(b ...Binding) CodecOpt {
	return func(c *codecCfg) { c.bindings = append(c.bindings, b...) }
}

// NewCodec builds a codec for the catalog. It resolves every catalog
// version against the current version of the type it reads as (mappings
// included) up front, so decoding does no schema work, and checks that
// each bound Payload struct (what producers send) encodes with its type's
// current schema.
// Bounds on what one record may make the decoder allocate. An Avro array
// block states its item count before the items: without a bound, a
// corrupt count (found by FuzzDecode) allocated terabytes and crashed the
// process instead of parking one record. Past a bound the record is
// ErrMalformed.
const (
	maxBytesField = 16 << 20 // one string or bytes value
	maxArrayItems = 1 << 20  // items of one array
)

func NewCodec(cat *Catalog, opts ...CodecOpt) (*Codec, error) {
	var cfg codecCfg
	for _, o := range opts {
		o(&cfg)
	}
	api := avro.Config{MaxByteSliceSize: maxBytesField, MaxSliceAllocSize: maxArrayItems}.Freeze()
	c := &Codec{cat: cat, api: api, reg: cfg.reg, bindings: map[string]Binding{},
		bySOE: map[uint64]*writer{}, plain: map[string]*writer{}}
	c.readers.New = func() any { return avro.NewReader(nil, 0, avro.WithReaderConfig(api)) }
	c.writers.New = func() any { return avro.NewWriter(nil, 512, avro.WithWriterConfig(api)) }
	for _, b := range cfg.bindings {
		t := cat.types[b.Type]
		if t == nil {
			return nil, fmt.Errorf("schemas: binding for %q: not a type of the catalog (%s)", b.Type, cat.source)
		}
		if _, dup := c.bindings[b.Type]; dup {
			return nil, fmt.Errorf("schemas: %s is bound twice", b.Type)
		}
		// A Payload struct is what producers encode: it must carry every
		// field. Other structs are read-only views and may leave fields out.
		if p, ok := bindNew(b).(Payload); ok {
			if _, err := api.Marshal(t.Current().Schema, p); err != nil {
				return nil, fmt.Errorf("schemas: Go struct %T does not match %s: %w", b.New(), t.Current().Path, err)
			}
		}
		c.bindings[b.Type] = b
	}
	for _, name := range cat.names {
		t := cat.types[name]
		as := cat.Resolve(name)
		for _, v := range t.Versions {
			w, err := newWriter(as, v.Type, v.Schema)
			if err != nil {
				return nil, fmt.Errorf("schemas: %s cannot be read as %s (%s): %w", v.Path, as.Name, as.Current().Path, err)
			}
			w.desc = "fingerprint " + fmt.Sprintf("%016x", v.Fingerprint) + " (" + v.Path + ")"
			if as == t {
				w.version = v.Version
			}
			c.bySOE[v.Fingerprint] = w
		}
	}
	for _, topic := range cat.Topics() {
		if p := cat.topics[topic].Plain; p != nil {
			w := *c.bySOE[p.Fingerprint]
			w.desc = "plain Avro of " + p.Path + " (catalog.yaml topics." + topic + ".plain)"
			c.plain[topic] = &w
		}
	}
	return c, nil
}

func bindNew(b Binding) any {
	if b.New == nil {
		return nil
	}
	return b.New()
}

// newWriter resolves a writer schema against the current version of t. A
// writer record of another name (a mapped foreign type) is read by field
// names: the reader gets the writer's name as an alias, which is what Avro
// resolution needs for a renamed record.
func newWriter(t *EventType, writerName string, ws avro.Schema) (*writer, error) {
	reader := t.Current().Schema.(*avro.RecordSchema)
	if writerName != t.Name && ws.(avro.NamedSchema).Name() != reader.Name() {
		aliased, err := avro.NewRecordSchema(reader.Name(), reader.Namespace(), reader.Fields(),
			avro.WithAliases(append(append([]string(nil), reader.Aliases()...), writerName)), avro.WithDoc(reader.Doc()))
		if err != nil {
			return nil, err
		}
		reader = aliased
	}
	w := &writer{t: t, name: writerName, reader: reader, resolved: reader}
	if reader == ws {
		return w, nil
	}
	// A fresh checker per pair: its cache is keyed by canonical
	// fingerprints, which ignore defaults and aliases.
	rs, err := avro.NewSchemaCompatibility().Resolve(reader, ws)
	if err != nil {
		return nil, err
	}
	w.resolved = rs
	return w, nil
}

// Catalog returns the codec's catalog.
func (c *Codec) Catalog() *Catalog { return c.cat }

// Registry returns the codec's registry client, nil without one.
func (c *Codec) Registry() *sr.Client { return c.reg }
