package schemas

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
)

// Wire framing of record values.
const (
	// single-object encoding: 0xC3 0x01, then the writer schema's
	// CRC-64-AVRO fingerprint (8 bytes, little endian), then Avro binary.
	soeMagic0, soeMagic1 = 0xC3, 0x01
	soeHeaderLen         = 10
	// Confluent framing: magic 0, 4-byte big-endian schema ID, Avro binary.
	confluentMagic     = 0x00
	confluentHeaderLen = 5
)

// idEntry is what a registry ID resolved to: a writer, or a permanent
// verdict (IDs are immutable, so "not a catalog type" stays true).
type idEntry struct {
	w    *writer
	kind error
	why  string
}

// writerOf finds the writer schema of a record and returns it with the
// Avro body: the topic's plain type when catalog.yaml declares one, else
// from the value's framing.
func (c *Codec) writerOf(ctx context.Context, r *kgo.Record) (*writer, []byte, *DecodeError) {
	v := r.Value
	if w := c.plain[r.Topic]; w != nil {
		if len(v) == 0 {
			return nil, nil, derr(ErrMalformed, r, "empty value on plain topic %s", r.Topic)
		}
		return w, v, nil
	}
	switch {
	case len(v) >= soeHeaderLen && v[0] == soeMagic0 && v[1] == soeMagic1:
		fp := binary.LittleEndian.Uint64(v[2:soeHeaderLen])
		w := c.bySOE[fp]
		if w == nil {
			return nil, nil, derr(ErrUnknownSchema, r, "single-object encoded with fingerprint %016x, which is no version of any type in the catalog (%s)", fp, c.cat.source)
		}
		return w, v[soeHeaderLen:], nil
	case len(v) >= confluentHeaderLen && v[0] == confluentMagic:
		id := int(binary.BigEndian.Uint32(v[1:confluentHeaderLen]))
		w, err := c.schemaByID(ctx, id, r)
		if err != nil {
			return nil, nil, err
		}
		return w, v[confluentHeaderLen:], nil
	case len(v) == 0:
		return nil, nil, derr(ErrMalformed, r, "empty value")
	default:
		return nil, nil, derr(ErrMalformed, r, "value is neither single-object encoded (C3 01) nor Confluent framed (00), starts with %#x; for bare Avro declare the topic's type in catalog.yaml (topics.%s.plain)", v[0], r.Topic)
	}
}

// schemaByID returns the writer of a Confluent schema ID: from the cache,
// else fetched from the registry (with its references), matched to a
// catalog version by fingerprint, else resolved against the type its
// record name stands for, else — when the catalog allows registry types —
// read as itself.
func (c *Codec) schemaByID(ctx context.Context, id int, r *kgo.Record) (*writer, *DecodeError) {
	e, ok := c.byID.Load(id)
	if !ok {
		if c.reg == nil {
			return nil, derr(ErrUnknownSchema, r, "Confluent-framed registry schema ID %d, but Reel has no schema registry configured", id)
		}
		// One fetch per ID even under concurrent decodes of a new schema.
		c.idMu.Lock()
		if e, ok = c.byID.Load(id); !ok {
			var keep bool
			e, keep = c.fetchID(ctx, id)
			if keep {
				c.byID.Store(id, e)
			}
		}
		c.idMu.Unlock()
	}
	ent := e.(*idEntry)
	if ent.w == nil {
		return nil, derr(ent.kind, r, "%s", ent.why)
	}
	return ent.w, nil
}

// fetchID asks the registry. keep is false for a verdict not to cache:
// the ID may exist later, or the registry was unreachable.
func (c *Codec) fetchID(ctx context.Context, id int) (e *idEntry, keep bool) {
	s, err := c.reg.SchemaByID(ctx, id)
	if err != nil {
		var re *sr.ResponseError
		switch {
		case errors.As(err, &re) && re.StatusCode == 404:
			return &idEntry{kind: ErrUnknownSchema, why: fmt.Sprintf("registry schema ID %d does not exist in the registry (%s)", id, re.Message)}, false
		case errors.As(err, &re) && re.StatusCode < 500:
			return &idEntry{kind: ErrUnknownSchema, why: fmt.Sprintf("registry schema ID %d: %v", id, err)}, false
		default: // 5xx, network, context
			return &idEntry{kind: ErrRegistryUnavailable, why: fmt.Sprintf("registry schema ID %d: %v", id, err)}, false
		}
	}
	verdict := func(kind error, format string, args ...any) *idEntry {
		return &idEntry{kind: kind, why: fmt.Sprintf(format, args...)}
	}
	if s.Type != sr.TypeAvro && s.Type != 0 {
		return verdict(ErrUnknownSchema, "registry schema ID %d is a %s schema; Reel reads Avro", id, s.Type), true
	}
	cache := &avro.SchemaCache{}
	if err := c.parseReferences(ctx, s.References, cache, map[string]bool{}); err != nil {
		return verdict(ErrUnknownSchema, "registry schema ID %d: its references: %v", id, err), false
	}
	sch, err := avro.ParseWithCache(s.Schema, "", cache)
	if err != nil {
		return verdict(ErrUnknownSchema, "registry schema ID %d does not parse as Avro: %v", id, err), true
	}
	rec, ok := sch.(*avro.RecordSchema)
	if !ok {
		return verdict(ErrUnknownSchema, "registry schema ID %d is a %s, not a record", id, sch.Type()), true
	}
	fp, err := fingerprint(rec)
	if err != nil {
		return verdict(ErrUnknownSchema, "registry schema ID %d: %v", id, err), true
	}
	if w := c.bySOE[fp]; w != nil {
		cp := *w
		cp.desc = fmt.Sprintf("registry schema ID %d (= %s)", id, w.desc)
		return &idEntry{w: &cp}, true
	}
	desc := fmt.Sprintf("registry schema ID %d (%s)", id, rec.FullName())
	t := c.cat.Resolve(rec.FullName())
	if t == nil {
		if !c.cat.registryTypes {
			return verdict(ErrUnknownEventType, "record %s (registry schema ID %d) is not a type of the catalog and catalog.yaml maps no such name (mappings), nor allows registry-only types (registryTypes)", rec.FullName(), id), true
		}
		return &idEntry{w: &writer{name: rec.FullName(), reader: rec, resolved: rec, desc: desc}}, true
	}
	w, err := newWriter(t, rec.FullName(), rec)
	if err != nil {
		return verdict(ErrUnknownSchema, "record %s (registry schema ID %d) cannot be read as %s (%s): %v", rec.FullName(), id, t.Name, t.Current().Path, err), true
	}
	w.desc = desc
	return &idEntry{w: w}, true
}

// parseReferences parses a registry schema's references (named types
// defined under other subjects) into cache, depth first.
func (c *Codec) parseReferences(ctx context.Context, refs []sr.SchemaReference, cache *avro.SchemaCache, seen map[string]bool) error {
	for _, ref := range refs {
		key := fmt.Sprintf("%s/%d", ref.Subject, ref.Version)
		if seen[key] {
			continue
		}
		seen[key] = true
		ss, err := c.reg.SchemaByVersion(ctx, ref.Subject, ref.Version)
		if err != nil {
			return fmt.Errorf("%s version %d: %w", ref.Subject, ref.Version, err)
		}
		if err := c.parseReferences(ctx, ss.References, cache, seen); err != nil {
			return err
		}
		if _, err := avro.ParseWithCache(ss.Schema.Schema, "", cache); err != nil {
			return fmt.Errorf("%s version %d: %w", ref.Subject, ref.Version, err)
		}
	}
	return nil
}
