package projectors_test

import (
	"context"
	"testing"

	"github.com/reel-dev/reel/examples/demo/events"
	"github.com/reel-dev/reel/examples/demo/projectors/registry"
	"github.com/reel-dev/reel/projectors"
	"github.com/reel-dev/reel/projectors/declare"
	"github.com/reel-dev/reel/projectors/projection"
	"github.com/reel-dev/reel/schemas"
)

// Declared (examples/projections, CEL) vs Go projections of the same name
// over the same events:
//
//	go test -run '^$' -bench 'Declared' -benchmem ./projectors/
//
// go: the Go projection, payloads bound to the demo's Go structs (as reel
// project decodes them). declared: the declared one, payloads generic
// *schemas.Record (a team's own catalog has no Go structs). declared-bound:
// the declared one under the bound codec, which decodes the payload a
// second time, generically (ev.Record).
func BenchmarkApplyDeclared(b *testing.B) {
	benchDeclared(b, func(b *testing.B, p *projection.Projection, dec projectors.Decoder, evs []schemas.Event) {
		w := projectors.NewBenchWorker(p, dec, 5000)
		ctx := context.Background()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if err := w.Apply(ctx, int64(i), evs[i%len(evs)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// BenchmarkWorkerDeclared: the whole worker path (decode, Apply, rows into
// the batch) per record, declared vs Go.
func BenchmarkWorkerDeclared(b *testing.B) {
	c := benchCodec(b)
	generic := genericCodec(b)
	shopEvs, seatEvs := benchEvents()
	shopRecs, _ := decoded(b, c, shopEvs)
	seatRecs, _ := decoded(b, c, seatEvs)
	ctx := context.Background()
	for _, d := range declaredDemo(b) {
		recs := shopRecs
		if d.Name == "seats" {
			recs = seatRecs
		}
		g, err := registry.Get(d.Name)
		if err != nil {
			b.Fatal(err)
		}
		for _, v := range []struct {
			name string
			p    *projection.Projection
			dec  projectors.Decoder
		}{{"go", g, c}, {"declared", d, generic}} {
			b.Run(d.Name+"/"+v.name, func(b *testing.B) {
				w := projectors.NewBenchWorker(v.p, v.dec, 5000)
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if err := w.Process(ctx, recs[i%len(recs)]); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}

func benchDeclared(b *testing.B, run func(*testing.B, *projection.Projection, projectors.Decoder, []schemas.Event)) {
	c := benchCodec(b)
	generic := genericCodec(b)
	shopEvs, seatEvs := benchEvents()
	_, shopBound := decoded(b, c, shopEvs)
	_, seatBound := decoded(b, c, seatEvs)
	_, shopGeneric := decoded(b, generic, shopEvs)
	_, seatGeneric := decoded(b, generic, seatEvs)
	for _, d := range declaredDemo(b) {
		bound, gen := shopBound, shopGeneric
		if d.Name == "seats" {
			bound, gen = seatBound, seatGeneric
		}
		g, err := registry.Get(d.Name)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(d.Name+"/go", func(b *testing.B) { run(b, g, c, bound) })
		b.Run(d.Name+"/declared", func(b *testing.B) { run(b, d, generic, gen) })
		b.Run(d.Name+"/declared-bound", func(b *testing.B) { run(b, d, c, bound) })
	}
}

func genericCodec(b *testing.B) *schemas.Codec {
	cat, err := events.Load()
	if err != nil {
		b.Fatal(err)
	}
	c, err := schemas.NewCodec(cat)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func declaredDemo(b *testing.B) []*projection.Projection {
	cat, err := events.Load()
	if err != nil {
		b.Fatal(err)
	}
	ps, err := declare.LoadDir("../examples/projections", cat)
	if err != nil {
		b.Fatal(err)
	}
	return ps
}
