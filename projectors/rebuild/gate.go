package rebuild

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/reel-dev/reel/schemas"
)

// ErrSchemaGate is returned when the topics hold events the current reader
// cannot read.
var ErrSchemaGate = errors.New("schema gate: stored events cannot be read by the current reader")

// WriterSeen is one distinct writer schema found in the topics.
type WriterSeen struct {
	Type      string // reel.type header ("" when missing)
	Version   string // reel.version header as written
	Framing   string // "single-object", "confluent", "other"
	Writer    string // fingerprint (%016x) or registry schema ID
	Count     int64
	First     string // topic/partition@offset of the first record
	Problem   string // "" when readable
	firstRec  *kgo.Record
	checkedOK bool
}

// GateReport is the schema gate's verdict over the scanned range.
type GateReport struct {
	Scanned  int64
	Duration time.Duration
	Writers  []WriterSeen
	Catalog  error // the catalog's own compatibility gate (nil: passed)
	// Unfinished partitions returned nothing for the idle time before
	// their end offset: the rest are transaction markers or aborted
	// records (never delivered under read_committed).
	Unfinished  []string
	FetchErrors []string
}

// Err is nil when every writer schema is readable and the catalog passes.
func (r GateReport) Err() error {
	var b strings.Builder
	n := 0
	for _, w := range r.Writers {
		if w.Problem == "" {
			continue
		}
		n++
		fmt.Fprintf(&b, "\n  %s v%s (%s %s): %d event(s), first at %s: %s", orDash(w.Type), orDash(w.Version), w.Framing, w.Writer, w.Count, w.First, w.Problem)
	}
	if len(r.FetchErrors) > 0 && len(r.Unfinished) > 0 {
		fmt.Fprintf(&b, "\n  could not read %v: %v", r.Unfinished, r.FetchErrors[:min(3, len(r.FetchErrors))])
		n++
	}
	if r.Catalog != nil {
		fmt.Fprintf(&b, "\n  catalog: %v", r.Catalog)
		n++
	}
	if n == 0 {
		return nil
	}
	return fmt.Errorf("%w:%s", ErrSchemaGate, b.String())
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Gate scans the given offset ranges of the topics (headers and the first
// bytes of each value — no decoding) and checks every distinct writer
// schema against the codec: single-object fingerprints must be catalog
// versions (NewCodec has resolved each of them against the current reader
// already), and one record per other writer (registry IDs, unknown framing)
// is decoded through the codec, exactly the path the projector takes.
//
// Why a scan: Kafka is the only complete record of what was written. The
// event log projection or a registry only know what was readable or
// registered; an unreadable event is exactly what they miss. The scan reads
// at the broker's fetch speed, far faster than the replay it guards.
func Gate(ctx context.Context, codec *schemas.Codec, kopts []kgo.Opt, from, to map[string]map[int32]int64, idle time.Duration) (GateReport, error) {
	start := time.Now()
	rep := GateReport{Catalog: schemas.CheckCompatibility(codec.Catalog()).Err()}
	known := map[uint64]string{}
	for _, name := range codec.Catalog().EventTypes() {
		for _, v := range codec.Catalog().Versions(name) {
			known[v.Fingerprint] = name
		}
	}
	assign := map[string]map[int32]kgo.Offset{}
	remaining := 0
	for topic, parts := range from {
		for p, o := range parts {
			if to[topic][p] <= o {
				continue
			}
			if assign[topic] == nil {
				assign[topic] = map[int32]kgo.Offset{}
			}
			assign[topic][p] = kgo.NewOffset().At(o)
			remaining++
		}
	}
	writers := map[string]*WriterSeen{}
	if remaining > 0 {
		cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), kopts...), kgo.ConsumePartitions(assign),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
		if err != nil {
			return rep, err
		}
		defer cl.Close()
		done := map[string]map[int32]bool{}
		lastProgress := time.Now()
		for remaining > 0 {
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			fs := cl.PollFetches(pctx)
			cancel()
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			fs.EachError(func(t string, p int32, err error) {
				if !errors.Is(err, context.DeadlineExceeded) {
					rep.FetchErrors = append(rep.FetchErrors, fmt.Sprintf("%s/%d: %v", t, p, err))
				}
			})
			got := false
			fs.EachRecord(func(r *kgo.Record) {
				end := to[r.Topic][r.Partition]
				if r.Offset >= end || done[r.Topic][r.Partition] {
					return
				}
				got = true
				rep.Scanned++
				seeWriter(writers, known, r)
				if r.Offset >= end-1 {
					if done[r.Topic] == nil {
						done[r.Topic] = map[int32]bool{}
					}
					done[r.Topic][r.Partition] = true
					remaining--
				}
			})
			if got {
				lastProgress = time.Now()
			} else if time.Since(lastProgress) > idle {
				// What is left are transaction markers or aborted records,
				// which read_committed never returns.
				for topic, parts := range assign {
					for p := range parts {
						if !done[topic][p] {
							rep.Unfinished = append(rep.Unfinished, fmt.Sprintf("%s/%d", topic, p))
						}
					}
				}
				sort.Strings(rep.Unfinished)
				break
			}
		}
	}
	for _, w := range writers {
		if w.Problem == "" && !w.checkedOK && w.firstRec != nil {
			if _, err := codec.Decode(ctx, w.firstRec); err != nil && !errors.Is(err, schemas.ErrMalformed) && !errors.Is(err, schemas.ErrUpcast) {
				w.Problem = err.Error()
			}
		}
		w.firstRec = nil
		rep.Writers = append(rep.Writers, *w)
	}
	sort.Slice(rep.Writers, func(i, j int) bool {
		a, b := rep.Writers[i], rep.Writers[j]
		return a.Type < b.Type || a.Type == b.Type && (a.Version < b.Version || a.Version == b.Version && a.Writer < b.Writer)
	})
	rep.Duration = time.Since(start)
	return rep, nil
}

func seeWriter(writers map[string]*WriterSeen, known map[uint64]string, r *kgo.Record) {
	var typ, ver string
	for _, h := range r.Headers {
		switch h.Key {
		case schemas.HeaderType:
			typ = string(h.Value)
		case schemas.HeaderVersion:
			ver = string(h.Value)
		}
	}
	framing, writer := "other", ""
	v := r.Value
	switch {
	case len(v) >= 10 && v[0] == 0xC3 && v[1] == 0x01:
		framing, writer = "single-object", fmt.Sprintf("fingerprint %016x", binary.LittleEndian.Uint64(v[2:10]))
	case len(v) >= 5 && v[0] == 0:
		framing, writer = "confluent", fmt.Sprintf("schema id %d", binary.BigEndian.Uint32(v[1:5]))
	case len(v) > 0:
		writer = fmt.Sprintf("first byte %#x", v[0])
	default:
		writer = "empty value"
	}
	k := typ + "\x00" + ver + "\x00" + writer
	w := writers[k]
	if w != nil {
		w.Count++
		return
	}
	w = &WriterSeen{Type: typ, Version: ver, Framing: framing, Writer: writer, Count: 1,
		First: fmt.Sprintf("%s/%d@%d", r.Topic, r.Partition, r.Offset)}
	// No reel.type header: a CloudEvents or derived envelope, which the
	// decode below checks.
	switch {
	case framing == "single-object":
		fp := binary.LittleEndian.Uint64(v[2:10])
		switch owner, ok := known[fp]; {
		case !ok:
			w.Problem = fmt.Sprintf("writer schema (fingerprint %016x) is not in the catalog: the current reader cannot resolve it", fp)
		case typ == "":
		case owner != typ:
			w.Problem = fmt.Sprintf("header says %s but the fingerprint is a %s schema", typ, owner)
		default:
			w.checkedOK = true
		}
	}
	if !w.checkedOK && w.Problem == "" {
		// Registry IDs and anything else: decode one record through the
		// codec (below), the same path the projector takes.
		w.firstRec = r
	}
	writers[k] = w
}
