package schemas

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
)

// Encode validates ev and turns it into a record for the event type's topic
// (catalog.yaml): Key = aggregate ID, Value = framed Avro of the CURRENT
// version (ev.Version is ignored), Headers = Reel's envelope. Missing ID
// (UUIDv7), OccurredAt (now), Type and AggregateID (from the payload) are
// filled in. Errors wrap ErrUnknownEventType, ErrEmptyAggregateID,
// ErrSchemaMismatch or, with a registry, ErrUnknownSchema (current version
// not registered).
func (c *Codec) Encode(ctx context.Context, ev Event) (*kgo.Record, error) {
	ev, t, err := c.Prepare(ev)
	if err != nil {
		return nil, err
	}
	if t.Topic == "" {
		return nil, fmt.Errorf("%w: %s is on no topic (catalog.yaml topics)", ErrUnknownEventType, t.Name)
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
	payload := ev.Payload
	if r, ok := payload.(*Record); ok {
		payload = r.m
	}
	w.WriteVal(cur.Schema, payload)
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
		Topic:   t.Topic,
		Key:     []byte(ev.AggregateID),
		Value:   value,
		Headers: headers,
	}, nil
}

// Prepare fills in and checks an event the way Encode does, without
// encoding. The payload is a Payload struct (pointer or value), a *Record
// or a map[string]any in hamba/avro's generic form; a struct bound to
// the type (WithBindings) must be that struct. Type, AggregateID (from a
// Payload, else the type's aggregate field), ID and OccurredAt are set,
// Version is the current version.
func (c *Codec) Prepare(ev Event) (Event, *EventType, error) {
	var fromPayload string
	var hasAgg bool
	switch v := ev.Payload.(type) {
	case nil:
		return ev, nil, fmt.Errorf("%w: event %q (%s): nil payload", ErrSchemaMismatch, ev.ID, ev.Type)
	case map[string]any:
		ev.Payload = &Record{m: v}
	}
	if ev.Type != "" && c.cat.types[ev.Type] == nil {
		return ev, nil, fmt.Errorf("%w: %q is not in the catalog (%s)", ErrUnknownEventType, ev.Type, c.cat.source)
	}
	if r, ok := ev.Payload.(*Record); ok {
		if ev.Type == "" && r.schema != nil {
			ev.Type = r.Name()
		}
	} else {
		p, err := asPayload(ev.Payload)
		if err != nil {
			return ev, nil, fmt.Errorf("%w: event %q (%s): %v", ErrSchemaMismatch, ev.ID, ev.Type, err)
		}
		if p == nil {
			return ev, nil, fmt.Errorf("%w: %s event %q: payload %T is neither a catalog struct nor a *Record", ErrSchemaMismatch, ev.Type, ev.ID, ev.Payload)
		}
		if ev.Type == "" {
			ev.Type = p.EventType()
		} else if ev.Type != p.EventType() {
			return ev, nil, fmt.Errorf("%w: event type %s but payload %T is %s", ErrSchemaMismatch, ev.Type, p, p.EventType())
		}
		ev.Payload = p
		fromPayload, hasAgg = p.AggregateID(), true
	}
	t := c.cat.types[ev.Type]
	if t == nil {
		return ev, nil, fmt.Errorf("%w: %q is not in the catalog (%s)", ErrUnknownEventType, ev.Type, c.cat.source)
	}
	if r, ok := ev.Payload.(*Record); ok {
		if r.schema == nil {
			ev.Payload = NewRecord(t.Current().Schema.(*avro.RecordSchema), r.m)
		} else if r.schema.FullName() != t.Name {
			return ev, nil, fmt.Errorf("%w: %s event with a %s record", ErrSchemaMismatch, ev.Type, r.schema.FullName())
		}
		if t.AggregateField != "" {
			if s, ok := ev.Payload.(*Record).Get(t.AggregateField).(string); ok {
				fromPayload, hasAgg = s, true
			}
		}
	} else if b, ok := c.bindings[t.Name]; ok && b.New != nil {
		if want := reflect.TypeOf(b.New()); reflect.TypeOf(ev.Payload) != want {
			return ev, nil, fmt.Errorf("%w: %s event has payload %T, want %v", ErrSchemaMismatch, ev.Type, ev.Payload, want)
		}
	}
	if ev.AggregateID == "" {
		ev.AggregateID = fromPayload
	}
	if ev.AggregateID == "" {
		return ev, nil, fmt.Errorf("%w: %s event %q", ErrEmptyAggregateID, ev.Type, ev.ID)
	}
	if hasAgg && fromPayload != ev.AggregateID {
		return ev, nil, fmt.Errorf("%w: %s event aggregate ID %q but payload says %q", ErrSchemaMismatch, ev.Type, ev.AggregateID, fromPayload)
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

// asPayload accepts a pointer to a Payload struct or the struct itself.
// (nil, nil): v is something else.
func asPayload(v any) (Payload, error) {
	if p, ok := v.(Payload); ok {
		if rv := reflect.ValueOf(p); rv.Kind() == reflect.Pointer && rv.IsNil() {
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
	c.byID.LoadOrStore(ss.ID, &idEntry{w: c.bySOE[cur.Fingerprint]})
	return ss.ID, nil
}
