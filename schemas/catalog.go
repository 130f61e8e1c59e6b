package schemas

import (
	"errors"
	"strings"

	"github.com/hamba/avro/v2"
)

// ErrCatalog marks a catalog that cannot be loaded: a file that does not
// parse, versions with gaps, a catalog.yaml naming what does not exist.
var ErrCatalog = errors.New("invalid catalog")

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

// SchemaVersion is one .avsc file: one version of one event type.
type SchemaVersion struct {
	Type        string      // full Avro name, e.g. "conference.SeatsReserved"
	Version     int         // 1, 2, …
	Path        string      // path in the catalog, e.g. "conference/SeatsReserved.v2.avsc"
	Text        string      // the .avsc as written (what a registry stores)
	Schema      avro.Schema // parsed record schema; treat as read-only
	Fingerprint uint64      // CRC-64-AVRO of the canonical form (single-object encoding)
}

// EventType describes one event type of the catalog: one Avro record name.
type EventType struct {
	Name          string        // full Avro name
	Topic         string        // topic catalog.yaml puts it on; "" when none
	Compatibility Compatibility // level the gate enforces
	// AggregateField is the payload field holding the aggregate ID, checked
	// against the record key (or standing in for an empty key). "": the
	// key alone.
	AggregateField string
	Versions       []SchemaVersion // ascending; the last is current
}

// Current is the newest version: what producers write and readers decode into.
func (t *EventType) Current() SchemaVersion { return t.Versions[len(t.Versions)-1] }

// Namespace is the Avro namespace of the type's name ("" for none).
func (t *EventType) Namespace() string {
	if i := strings.LastIndexByte(t.Name, '.'); i >= 0 {
		return t.Name[:i]
	}
	return ""
}

// Topic is one topic catalog.yaml declares.
type Topic struct {
	Name           string
	Types          []string       // catalog types on the topic, sorted
	AggregateField string         // topic default of EventType.AggregateField
	Plain          *SchemaVersion // non-nil: values are bare Avro of this version
}

// Catalog is the set of event types and their schema versions, loaded from
// a directory of .avsc files (LoadDir, LoadFS). It is immutable after
// loading and safe for concurrent use.
type Catalog struct {
	source        string // where it was loaded from, for messages
	types         map[string]*EventType
	names         []string                  // sorted
	byFP          map[uint64]*SchemaVersion // every version by fingerprint
	topics        map[string]*Topic
	mappings      map[string]string // foreign name → catalog type
	strategy      SubjectStrategy
	registryTypes bool
}

// Source is where the catalog was loaded from (a directory, or "embedded").
func (c *Catalog) Source() string { return c.source }

// EventTypes lists the full names of all event types, sorted.
func (c *Catalog) EventTypes() []string { return append([]string(nil), c.names...) }

// Type returns an event type, or nil when the catalog has none of that name.
// The result is shared: do not modify it.
func (c *Catalog) Type(eventType string) *EventType { return c.types[eventType] }

// Resolve returns the catalog type a name stands for: the type itself, or
// the target of a mapping in catalog.yaml. nil when neither.
func (c *Catalog) Resolve(name string) *EventType {
	if to, ok := c.mappings[name]; ok {
		return c.types[to]
	}
	return c.types[name]
}

// Mappings returns catalog.yaml's foreign name → catalog type table.
func (c *Catalog) Mappings() map[string]string {
	out := make(map[string]string, len(c.mappings))
	for k, v := range c.mappings {
		out[k] = v
	}
	return out
}

// ByFingerprint returns the catalog version with that CRC-64-AVRO
// fingerprint, nil when none.
func (c *Catalog) ByFingerprint(fp uint64) *SchemaVersion { return c.byFP[fp] }

// Topic returns the Kafka topic of an event type, "" for an unknown type or
// one catalog.yaml puts on no topic.
func (c *Catalog) Topic(eventType string) string {
	if t := c.types[eventType]; t != nil {
		return t.Topic
	}
	return ""
}

// TopicSpec returns what catalog.yaml says about a topic, nil when nothing.
func (c *Catalog) TopicSpec(topic string) *Topic { return c.topics[topic] }

// Versions returns every schema version of an event type, oldest first.
func (c *Catalog) Versions(eventType string) []SchemaVersion {
	if t := c.types[eventType]; t != nil {
		return append([]SchemaVersion(nil), t.Versions...)
	}
	return nil
}

// Topics lists the topics catalog.yaml declares, sorted.
func (c *Catalog) Topics() []string { return sortedKeys(c.topics) }

// RegistryTypes reports whether writer schemas found only in the registry
// decode generically (catalog.yaml registryTypes).
func (c *Catalog) RegistryTypes() bool { return c.registryTypes }

// SubjectStrategy is how Subject names registry subjects.
func (c *Catalog) SubjectStrategy() SubjectStrategy { return c.strategy }

// Subject is the Schema Registry subject of an event type under the
// catalog's strategy (catalog.yaml subjectNameStrategy, default
// TopicRecordName: "<topic>-<full name>", because one topic carries many
// event types). A type on no topic uses RecordName: "<full name>".
func (c *Catalog) Subject(eventType string) string {
	topic := c.Topic(eventType)
	switch {
	case topic == "" || c.strategy == RecordName:
		return eventType
	case c.strategy == TopicName:
		return topic + "-value"
	default:
		return topic + "-" + eventType
	}
}
