package schemas

import (
	"embed"
	"encoding/binary"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/hamba/avro/v2"
)

// files holds every .avsc of the catalog: <namespace>/<Name>.v<N>.avsc.
//
//go:embed conference/*.avsc shop/*.avsc
var files embed.FS

// Compatibility is the level the gate enforces across all versions of one
// event type. The names are the Confluent Schema Registry levels.
type Compatibility string

const (
	// FullTransitive: every version reads every other version. The default:
	// old and new readers and writers can be deployed in any order.
	FullTransitive Compatibility = "FULL_TRANSITIVE"
	// BackwardTransitive: every version reads every OLDER version. Needed for
	// type widening (int→long), which Avro cannot read backwards; readers
	// (projectors) must be deployed before writers start using the new
	// version.
	BackwardTransitive Compatibility = "BACKWARD_TRANSITIVE"
)

// Domain is a bounded context: one Avro namespace, one Kafka topic. All
// events of a domain share the topic so every event of an aggregate lands in
// one partition, in order.
type Domain struct {
	Namespace string // Avro namespace and directory, e.g. "shop"
	Topic     string // Kafka topic, e.g. "shop.orders"
	Key       string // what the record key (aggregate ID) is
}

// domains is the immutable table of bounded contexts.
var domains = []Domain{
	{Namespace: "conference", Topic: "conference.seats", Key: "conference ID"},
	{Namespace: "shop", Topic: "shop.orders", Key: "order ID"},
}

// Domains lists the bounded contexts of the catalog.
func Domains() []Domain { return append([]Domain(nil), domains...) }

// typeSpec is what Go adds to an event type's .avsc files: the struct of the
// current version, the compatibility level and the upcaster.
type typeSpec struct {
	newPayload func() Payload
	compat     Compatibility // "" means FullTransitive
	// upcast fixes semantic gaps of old versions after schema resolution;
	// it is called only for events written with an older version.
	upcast func(writerVersion int, ev *Event) error
}

// typeSpecs is the immutable table of Go types per event type.
var typeSpecs = map[string]typeSpec{
	"conference.ConferenceCreated":        {newPayload: func() Payload { return new(ConferenceCreated) }},
	"conference.SeatsAdded":               {newPayload: func() Payload { return new(SeatsAdded) }, compat: BackwardTransitive},
	"conference.SeatsReserved":            {newPayload: func() Payload { return new(SeatsReserved) }, upcast: upcastSeatsReserved},
	"conference.SeatReservationCancelled": {newPayload: func() Payload { return new(SeatReservationCancelled) }},
	"shop.OrderPlaced":                    {newPayload: func() Payload { return new(OrderPlaced) }},
	"shop.OrderItemAdded":                 {newPayload: func() Payload { return new(OrderItemAdded) }},
	"shop.StockReserved":                  {newPayload: func() Payload { return new(StockReserved) }},
	"shop.StockReservationFailed":         {newPayload: func() Payload { return new(StockReservationFailed) }},
	"shop.PaymentConfirmed":               {newPayload: func() Payload { return new(PaymentConfirmed) }},
	"shop.PaymentFailed":                  {newPayload: func() Payload { return new(PaymentFailed) }},
	"shop.StockReleased":                  {newPayload: func() Payload { return new(StockReleased) }},
	"shop.OrderConfirmed":                 {newPayload: func() Payload { return new(OrderConfirmed) }},
	"shop.OrderCancelled":                 {newPayload: func() Payload { return new(OrderCancelled) }},
}

// SchemaVersion is one .avsc file: one version of one event type.
type SchemaVersion struct {
	Type        string      // full Avro name, e.g. "conference.SeatsReserved"
	Version     int         // 1, 2, …
	Path        string      // path in the catalog, e.g. "conference/SeatsReserved.v2.avsc"
	Text        string      // the .avsc as written (what a registry stores)
	Schema      avro.Schema // parsed; treat as read-only
	Fingerprint uint64      // CRC-64-AVRO of the canonical form (single-object encoding)
}

// EventType describes one event type of the catalog.
type EventType struct {
	Name          string          // full Avro name
	Domain        Domain          // namespace and topic
	Compatibility Compatibility   // level the gate enforces
	Versions      []SchemaVersion // ascending; the last is current
	spec          typeSpec        // zero when the catalog has no Go type (LoadFS)
}

// Current is the newest version: what producers write and readers decode into.
func (t *EventType) Current() SchemaVersion { return t.Versions[len(t.Versions)-1] }

// Catalog is the set of event types and their schema versions. It is
// immutable after Load and safe for concurrent use.
type Catalog struct {
	types map[string]*EventType
	names []string // sorted
}

// Load returns the embedded catalog.
func Load() (*Catalog, error) { return LoadFS(files) }

// LoadFS reads a catalog laid out like the embedded one
// (<namespace>/<Name>.v<N>.avsc, namespaces from Domains). Tests use it to
// run the gate over a catalog with an extra, deliberately breaking version.
func LoadFS(fsys fs.FS) (*Catalog, error) {
	cat := &Catalog{types: map[string]*EventType{}}
	for _, d := range domains {
		paths, err := fs.Glob(fsys, d.Namespace+"/*.avsc")
		if err != nil {
			return nil, err
		}
		for _, p := range paths {
			if err := cat.add(fsys, d, p); err != nil {
				return nil, err
			}
		}
	}
	if len(cat.types) == 0 {
		return nil, fmt.Errorf("schemas: catalog has no .avsc files")
	}
	seen := map[uint64]string{}
	for name, t := range cat.types {
		sort.Slice(t.Versions, func(i, j int) bool { return t.Versions[i].Version < t.Versions[j].Version })
		for i, v := range t.Versions {
			if v.Version != i+1 {
				return nil, fmt.Errorf("schemas: %s: versions must be 1..n without gaps, found v%d at position %d", name, v.Version, i+1)
			}
			if other, dup := seen[v.Fingerprint]; dup {
				return nil, fmt.Errorf("schemas: %s has the same canonical form (CRC-64-AVRO %016x) as %s; a new version must change the wire schema", v.Path, v.Fingerprint, other)
			}
			seen[v.Fingerprint] = v.Path
		}
		cat.names = append(cat.names, name)
	}
	sort.Strings(cat.names)
	return cat, nil
}

func (c *Catalog) add(fsys fs.FS, d Domain, p string) error {
	base := strings.TrimSuffix(path.Base(p), ".avsc")
	dot := strings.LastIndex(base, ".v")
	if dot <= 0 {
		return fmt.Errorf("schemas: %s: file name must be <Name>.v<N>.avsc", p)
	}
	ver, err := strconv.Atoi(base[dot+2:])
	if err != nil || ver < 1 {
		return fmt.Errorf("schemas: %s: file name must be <Name>.v<N>.avsc with N >= 1", p)
	}
	text, err := fs.ReadFile(fsys, p)
	if err != nil {
		return err
	}
	// A fresh cache per file: versions of one type share a name, and the
	// global cache would let one version's definition leak into another.
	sch, err := avro.ParseBytesWithCache(text, "", &avro.SchemaCache{})
	if err != nil {
		return fmt.Errorf("schemas: %s: %w", p, err)
	}
	rec, ok := sch.(*avro.RecordSchema)
	if !ok {
		return fmt.Errorf("schemas: %s: top-level schema must be a record", p)
	}
	name := d.Namespace + "." + base[:dot]
	if rec.FullName() != name {
		return fmt.Errorf("schemas: %s: record is named %s, file and directory say %s", p, rec.FullName(), name)
	}
	fp, err := fingerprint(rec)
	if err != nil {
		return fmt.Errorf("schemas: %s: %w", p, err)
	}
	t := c.types[name]
	if t == nil {
		spec := typeSpecs[name]
		compat := spec.compat
		if compat == "" {
			compat = FullTransitive
		}
		t = &EventType{Name: name, Domain: d, Compatibility: compat, spec: spec}
		c.types[name] = t
	}
	t.Versions = append(t.Versions, SchemaVersion{
		Type: name, Version: ver, Path: p, Text: string(text), Schema: rec, Fingerprint: fp,
	})
	return nil
}

// fingerprint is the CRC-64-AVRO fingerprint as the little-endian integer
// single-object encoding puts on the wire.
func fingerprint(s avro.Schema) (uint64, error) {
	b, err := s.FingerprintUsing(avro.CRC64AvroLE)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// EventTypes lists the full names of all event types, sorted.
func (c *Catalog) EventTypes() []string { return append([]string(nil), c.names...) }

// Type returns an event type, or nil when the catalog has none of that name.
// The result is shared: do not modify it.
func (c *Catalog) Type(eventType string) *EventType { return c.types[eventType] }

// Topic returns the Kafka topic of an event type, "" for an unknown type.
func (c *Catalog) Topic(eventType string) string {
	if t := c.types[eventType]; t != nil {
		return t.Domain.Topic
	}
	return ""
}

// Versions returns every schema version of an event type, oldest first.
func (c *Catalog) Versions(eventType string) []SchemaVersion {
	if t := c.types[eventType]; t != nil {
		return append([]SchemaVersion(nil), t.Versions...)
	}
	return nil
}

// Topics lists the topics of the catalog's domains that have event types.
func (c *Catalog) Topics() []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range c.names {
		if tp := c.types[n].Domain.Topic; !seen[tp] {
			seen[tp] = true
			out = append(out, tp)
		}
	}
	return out
}

// Subject is the Schema Registry subject of an event type: Confluent's
// TopicRecordNameStrategy, "<topic>-<full name>", because one topic carries
// many event types.
func (c *Catalog) Subject(eventType string) string {
	return c.Topic(eventType) + "-" + eventType
}
