package schemas

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// CloudEvents Kafka protocol binding, binary content mode: attributes are
// headers named ce_<attribute>, the data is the record value.
const (
	HeaderCEType          = "ce_type"
	HeaderCEID            = "ce_id"
	HeaderCETime          = "ce_time"
	HeaderCESource        = "ce_source"
	HeaderCESubject       = "ce_subject"
	HeaderCESpecVersion   = "ce_specversion"
	HeaderCECorrelationID = "ce_correlationid" // extension, optional
	HeaderCECausationID   = "ce_causationid"   // extension, optional
	HeaderContentType     = "content-type"
	ceHeaderPrefix        = "ce_"
	reelHeaderPrefix      = "reel."
)

// envelope is what the record's headers say about the event, before the
// payload is read.
type envelope struct {
	kind         Envelope
	typ          string // from reel.type / ce_type; "" when derived
	id           string
	at           time.Time // zero: the record timestamp
	agg          string    // reel.aggregate_id
	hasAgg       bool
	version      int // reel.version, 0 when absent
	corr, caus   string
	source, subj string
	contentType  string
}

// readEnvelope picks the envelope's source: Reel's headers when reel.type
// is there, else CloudEvents when any ce_ header is, else derived (type
// from the writer schema, ID from the position, time from the record).
func readEnvelope(r *kgo.Record) (envelope, *DecodeError) {
	var env envelope
	raw := func(k string) ([]byte, bool) {
		for i := range r.Headers {
			if r.Headers[i].Key == k {
				return r.Headers[i].Value, true
			}
		}
		return nil, false
	}
	hdr := func(k string) (string, bool) {
		b, ok := raw(k)
		if !ok || len(b) == 0 {
			return "", ok
		}
		return string(b), true
	}
	anyPrefix := func(p string) bool {
		for i := range r.Headers {
			if strings.HasPrefix(r.Headers[i].Key, p) {
				return true
			}
		}
		return false
	}
	env.contentType, _ = hdr(HeaderContentType)
	switch typ, ok := hdr(HeaderType); {
	case ok:
		env.kind = EnvelopeReel
		env.typ = typ
		if typ == "" {
			return env, derr(ErrMissingHeader, r, "%s header is empty", HeaderType)
		}
		if env.id, _ = hdr(HeaderEventID); env.id == "" {
			return env, derr(ErrMissingHeader, r, "%s event without %s header", typ, HeaderEventID)
		}
		occ, _ := raw(HeaderOccurredAt)
		if len(occ) == 0 {
			return env, derr(ErrMissingHeader, r, "%s event %s without %s header", typ, env.id, HeaderOccurredAt)
		}
		var at time.Time
		if err := at.UnmarshalText(occ); err != nil {
			return env, derr(ErrInvalidHeader, r, "%s header %q is not an RFC 3339 time", HeaderOccurredAt, occ)
		}
		env.at = at.UTC()
		if v, ok := raw(HeaderVersion); ok {
			n, err := strconv.Atoi(string(v))
			if err != nil || n < 1 {
				return env, derr(ErrInvalidHeader, r, "%s header %q is not a version number", HeaderVersion, v)
			}
			env.version = n
		}
		env.agg, env.hasAgg = hdr(HeaderAggregateID)
		env.corr, _ = hdr(HeaderCorrelationID)
		env.caus, _ = hdr(HeaderCausationID)
	case anyPrefix(reelHeaderPrefix) && hasReelEnvelopeHeader(r):
		return env, derr(ErrMissingHeader, r, "reel.* envelope headers without %s", HeaderType)
	case anyPrefix(ceHeaderPrefix):
		env.kind = EnvelopeCloudEvents
		if sv, ok := hdr(HeaderCESpecVersion); ok && !strings.HasPrefix(sv, "1.") {
			return env, derr(ErrInvalidHeader, r, "%s %q: Reel reads CloudEvents 1.x", HeaderCESpecVersion, sv)
		}
		if env.typ, _ = hdr(HeaderCEType); env.typ == "" {
			return env, derr(ErrMissingHeader, r, "CloudEvents headers without %s", HeaderCEType)
		}
		if env.id, _ = hdr(HeaderCEID); env.id == "" {
			return env, derr(ErrMissingHeader, r, "CloudEvent of type %s without %s", env.typ, HeaderCEID)
		}
		if t, ok := hdr(HeaderCETime); ok {
			at, err := time.Parse(time.RFC3339Nano, t)
			if err != nil {
				return env, derr(ErrInvalidHeader, r, "%s %q is not an RFC 3339 time (CloudEvent %s)", HeaderCETime, t, env.id)
			}
			env.at = at.UTC()
		}
		env.source, _ = hdr(HeaderCESource)
		env.subj, _ = hdr(HeaderCESubject)
		env.corr, _ = hdr(HeaderCECorrelationID)
		env.caus, _ = hdr(HeaderCECausationID)
	default:
		env.kind = EnvelopeDerived
	}
	if env.contentType != "" && !isAvro(env.contentType) {
		return env, derr(ErrMalformed, r, "%s %q: Reel reads Avro values (application/avro, avro/binary, application/vnd.apache.avro+binary)", HeaderContentType, env.contentType)
	}
	if env.id == "" {
		env.id = positionID(r)
	}
	if env.at.IsZero() {
		env.at = r.Timestamp.UTC()
	}
	return env, nil
}

// hasReelEnvelopeHeader: a header of Reel's envelope other than the type,
// i.e. a producer meant to write Reel's envelope and left the type out.
func hasReelEnvelopeHeader(r *kgo.Record) bool {
	for _, h := range r.Headers {
		switch h.Key {
		case HeaderVersion, HeaderEventID, HeaderAggregateID, HeaderOccurredAt, HeaderCorrelationID, HeaderCausationID:
			return true
		}
	}
	return false
}

func isAvro(ct string) bool {
	mt := strings.ToLower(strings.TrimSpace(strings.SplitN(ct, ";", 2)[0]))
	return mt == "application/avro" || mt == "avro/binary" || strings.HasSuffix(mt, "+avro") ||
		strings.HasSuffix(mt, "avro+binary") || mt == "application/octet-stream"
}

// positionID is a derived event ID: topic/partition/offset, unique and
// stable across replays.
func positionID(r *kgo.Record) string {
	return r.Topic + "/" + strconv.Itoa(int(r.Partition)) + "/" + strconv.FormatInt(r.Offset, 10)
}

func derr(kind error, r *kgo.Record, format string, args ...any) *DecodeError {
	return &DecodeError{Kind: kind, Reason: fmt.Sprintf(format, args...), Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
}

func where(r *kgo.Record) string {
	if r.Topic == "" {
		return "record (no topic)"
	}
	return r.Topic + "/" + strconv.Itoa(int(r.Partition)) + "@" + strconv.FormatInt(r.Offset, 10)
}
