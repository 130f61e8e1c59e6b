package schemas

import (
	"context"
	"errors"
	"io"
	"reflect"
	"strconv"
	"strings"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Decode turns a record into an Event, whoever produced it.
//
// Envelope: Reel's headers when reel.type is there; else the CloudEvents
// Kafka binding (ce_type, ce_id, ce_time, ce_source, ce_subject,
// content-type); else derived — event ID = topic/partition/offset, time =
// the record timestamp.
//
// Writer schema: the topic's plain type (catalog.yaml), else the value's
// framing: single-object (fingerprint of a catalog version) or Confluent
// (registry schema ID, whatever subject it was registered under).
//
// Event type: the header's type (through catalog.yaml mappings) or, when
// there is none — or a CloudEvents type that names no catalog type — the
// writer schema's record name (through mappings). The payload is read as
// the type's current version (schema resolution: defaults, aliases,
// promotions), into its bound Go struct or a *Record, then upcast.
//
// Aggregate ID: the record key; with an aggregate field (catalog.yaml) the
// field's value must equal a non-empty key and stands in for an empty one.
//
// Every error is a *DecodeError whose Kind is one of ErrMissingHeader,
// ErrInvalidHeader, ErrUnknownEventType, ErrUnknownSchema, ErrMalformed,
// ErrAggregateMismatch, ErrUpcast or ErrRegistryUnavailable, with a reason
// that names the record's topic/partition@offset. On error the returned
// Event holds what was known (type, ID) for the parked row.
func (c *Codec) Decode(ctx context.Context, r *kgo.Record) (Event, error) {
	var ev Event
	env, e := readEnvelope(r)
	ev.Type, ev.ID, ev.Envelope = env.typ, env.id, env.kind
	if ev.ID == "" {
		ev.ID = positionID(r)
	}
	if e != nil {
		return ev, e
	}
	ev.OccurredAt, ev.CorrelationID, ev.CausationID = env.at, env.corr, env.caus
	ev.Source, ev.Subject = env.source, env.subj

	w, bodyBytes, e := c.writerOf(ctx, r)
	if e != nil {
		if env.typ != "" && env.kind == EnvelopeReel && c.cat.Resolve(env.typ) == nil {
			return ev, derr(ErrUnknownEventType, r, "%s header %q is not a type of the catalog (%s)", HeaderType, env.typ, c.cat.source)
		}
		return ev, e
	}
	if e := c.matchType(r, env, w); e != nil {
		return ev, e
	}
	ev.Type = w.typeName()
	ev.Version = w.version
	if ev.Version == 0 && env.kind == EnvelopeReel {
		ev.Version = env.version
	}

	b := &body{api: c.api, resolved: w.resolved, reader: w.reader, data: bodyBytes}
	bind := c.bindings[ev.Type]
	var p any
	if bind.New != nil && w.t != nil {
		p = bind.New()
	} else {
		p = new(map[string]any)
	}
	if err := c.read(w.resolved, bodyBytes, p); err != nil {
		return ev, &DecodeError{Kind: ErrMalformed, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Err: err,
			Reason: "the value does not match its writer schema " + w.desc + ": " + err.Error()}
	}
	if m, ok := p.(*map[string]any); ok {
		rec := NewRecord(w.reader, *m)
		b.rec = rec
		b.once.Do(func() {})
		p = rec
	}
	ev.Payload, ev.body = p, b

	if e := c.aggregate(r, env, w, &ev); e != nil {
		return ev, e
	}
	if bind.Upcast != nil && w.t != nil && w.version != 0 && w.version < len(w.t.Versions) {
		if err := bind.Upcast(w.version, &ev); err != nil {
			return ev, &DecodeError{Kind: ErrUpcast, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Err: err,
				Reason: ev.Type + " v" + strconv.Itoa(w.version) + " event " + ev.ID + ": " + err.Error()}
		}
	}
	return ev, nil
}

// matchType: a type the headers name must be the one the payload was
// written as. A CloudEvents type that names no catalog type is only a
// label: the writer schema decides.
func (c *Codec) matchType(r *kgo.Record, env envelope, w *writer) *DecodeError {
	if env.typ == "" {
		if w.t == nil && !c.cat.registryTypes {
			return derr(ErrUnknownEventType, r, "record %s (%s) is not a type of the catalog", w.name, w.desc)
		}
		return nil
	}
	ht := c.cat.Resolve(env.typ)
	switch {
	case ht == nil && env.kind == EnvelopeReel:
		return derr(ErrUnknownEventType, r, "%s header %q is not a type of the catalog (%s)", HeaderType, env.typ, c.cat.source)
	case ht == nil:
		return nil
	case w.t == nil:
		return derr(ErrUnknownEventType, r, "%s header says %s but the payload was written as %s (%s), which catalog.yaml does not map to it", headerOf(env), env.typ, w.name, w.desc)
	case ht != w.t:
		return derr(ErrMalformed, r, "%s header says %s but the payload was written as %s (%s)", headerOf(env), env.typ, w.t.Name, w.desc)
	}
	return nil
}

func headerOf(env envelope) string {
	if env.kind == EnvelopeCloudEvents {
		return HeaderCEType
	}
	return HeaderType
}

// read decodes one Avro body into p and insists it was consumed exactly.
func (c *Codec) read(schema avro.Schema, data []byte, p any) error {
	rd := c.readers.Get().(*avro.Reader)
	rd.Reset(data)
	rd.Error = nil
	rd.ReadVal(schema, p)
	if rd.Error == nil {
		rd.Peek() // io.EOF when the body was consumed exactly
		if rd.Error == nil {
			rd.Error = errors.New("trailing bytes after the record")
		} else if errors.Is(rd.Error, io.EOF) {
			rd.Error = nil
		}
	}
	err := rd.Error
	rd.Error = nil
	rd.Reset(nil)
	c.readers.Put(rd)
	return err
}

// aggregate sets ev.AggregateID from the key and checks it against the
// aggregate field and reel.aggregate_id.
func (c *Codec) aggregate(r *kgo.Record, env envelope, w *writer, ev *Event) *DecodeError {
	key := string(r.Key)
	field := ""
	if w.t != nil {
		field = w.t.AggregateField
	}
	if field == "" {
		if ts := c.cat.topics[r.Topic]; ts != nil {
			field = ts.AggregateField
		}
	}
	fromPayload, has := "", false
	if p, ok := ev.Payload.(Payload); ok {
		fromPayload, has = p.AggregateID(), true
	} else if field != "" {
		v, ok := structField(ev.Payload, field)
		if !ok {
			rec, err := ev.Record()
			if err != nil {
				return derr(ErrMalformed, r, "%s event %s: %v", ev.Type, ev.ID, err)
			}
			if v, err = rec.Lookup(field); err != nil {
				return derr(ErrAggregateMismatch, r, "%s event %s: aggregate field: %v", ev.Type, ev.ID, err)
			}
		}
		switch x := v.(type) {
		case string:
			fromPayload = x
		case int:
			fromPayload = strconv.Itoa(x)
		case int64:
			fromPayload = strconv.FormatInt(x, 10)
		case int32:
			fromPayload = strconv.FormatInt(int64(x), 10)
		case nil:
		default:
			return derr(ErrAggregateMismatch, r, "%s event %s: aggregate field %s is %T, not text or a number", ev.Type, ev.ID, field, v)
		}
		has = true
	}
	switch {
	case key != "" && has && fromPayload != key:
		what := "payload aggregate ID"
		if field != "" {
			what = "aggregate field " + field
		}
		return derr(ErrAggregateMismatch, r, "%s event %s: record key %q but %s is %q", ev.Type, ev.ID, key, what, fromPayload)
	case key != "":
		ev.AggregateID = key
	case has && fromPayload != "":
		ev.AggregateID = fromPayload
	case has:
		return derr(ErrAggregateMismatch, r, "%s event %s has no record key and an empty aggregate field %s", ev.Type, ev.ID, field)
	default:
		return derr(ErrAggregateMismatch, r, "%s event %s has no record key (aggregate ID), and catalog.yaml names no aggregateField for it", ev.Type, ev.ID)
	}
	if env.hasAgg && env.agg != ev.AggregateID {
		return derr(ErrAggregateMismatch, r, "%s header %q differs from the aggregate ID %q", HeaderAggregateID, env.agg, ev.AggregateID)
	}
	return nil
}

// structField reads a bound struct's field by its avro tag, so checking
// the aggregate field of a typed event does not decode it generically too.
func structField(p any, name string) (any, bool) {
	rv := reflect.ValueOf(p)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return nil, false
	}
	rv = rv.Elem()
	rt := rv.Type()
	for i := range rt.NumField() {
		if tag, _, _ := strings.Cut(rt.Field(i).Tag.Get("avro"), ","); tag == name {
			return rv.Field(i).Interface(), true
		}
	}
	return nil, false
}
