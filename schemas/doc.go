// Package schemas is Reel's event catalog and codec: event types loaded at
// run time from a directory of Avro schemas, and the codec that turns
// events into Kafka records and back — whoever produced them.
//
//	cat, _ := schemas.LoadDir("catalog")            // or schemas.LoadFS(fsys)
//	codec, _ := schemas.NewCodec(cat)               // + schemas.WithRegistry(srClient), schemas.WithBindings(…)
//	ev, err := codec.Decode(ctx, rec)
//	var de *schemas.DecodeError
//	if errors.As(err, &de) { /* park it: de.Kind, de.Reason */ }
//	r := ev.Payload.(*schemas.Record)               // generic; a bound Go struct when WithBindings names the type
//	city, _ := r.Lookup("customer.address.city")
//
// # Catalog
//
// Every .avsc in the tree is one version of the type its record's full
// name says; the version is in the file name (<Name>.v<N>.avsc); an
// optional catalog.yaml adds topics, aggregate fields, compatibility
// levels, subject naming and mappings of foreign names. See LoadFS and
// docs/events.md.
//
// # Wire
//
// Values: Confluent framing (0x00 + 4-byte schema ID, found in the
// registry whatever subject naming the producer used), single-object
// encoding (0xC3 0x01 + CRC-64-AVRO fingerprint of a catalog version), or
// bare Avro on a topic catalog.yaml declares plain. Envelope: Reel's
// headers (Header* constants, what Encode writes), else CloudEvents
// binary mode (ce_*), else derived from the record (type = record name,
// ID = topic/partition/offset, time = record timestamp, aggregate = key).
//
// # Invariants
//
// A reader resolves any writer (catalog version, newer registry version,
// mapped foreign record) to the type's current version with hamba/avro
// schema resolution, then runs the type's upcaster for older catalog
// versions. Versions are never edited once released: fixtures in testdata
// pin the demo's bytes. Every decode error is a *DecodeError with exactly
// one kind.
package schemas
