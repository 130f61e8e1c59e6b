// Package schemas is Reel's event catalog: one Avro schema (.avsc) per event
// type and version, a Go struct per event type's current version, and the
// codec that turns events into Kafka records and back.
//
//	cat, _ := schemas.Load()
//	codec, _ := schemas.NewCodec(cat, schemas.WithBindings(schemas.DemoBindings()...)) // or schemas.WithRegistry(srClient)
//	rec, _ := codec.Encode(ctx, schemas.NewEvent(&schemas.SeatsReserved{
//		ConferenceID: "c1", ReservationID: "r1", SeatType: "standard", Quantity: 2,
//	}))
//	// … produce rec, consume it somewhere else …
//	ev, err := codec.Decode(ctx, rec)
//	if errors.Is(err, schemas.ErrMalformed) { /* park it */ }
//	seats := ev.Payload.(*schemas.SeatsReserved) // always the current version
//
// # Layout
//
//	conference/*.avsc, shop/*.avsc  the catalog: <namespace>/<Name>.v<N>.avsc
//	catalog.go   Load, the domain (namespace → topic) and Go type tables
//	types.go     current-version structs; every one names its aggregate ID
//	codec.go     Encode/Decode, both wire framings, resolution and upcasting
//	upcast.go    semantic fixes for old versions
//	compat.go    the FULL_TRANSITIVE gate
//	registry.go  registering the catalog with a Confluent-compatible registry
//	testdata/    golden single-object fixtures per version, a breaking schema
//
// # Invariants
//
// Event type = full Avro name, one topic per namespace (Domains), record key
// = aggregate ID. A producer always writes the current version. A reader
// resolves any catalog version (found by CRC-64-AVRO fingerprint, or by
// registry ID) to the current version with hamba/avro schema resolution, then
// runs the type's upcaster for older versions. Versions are never edited once
// released: fixtures in testdata pin their bytes. Every type is
// FULL_TRANSITIVE except where the catalog table says otherwise and why
// (SeatsAdded widened int→long, which Avro can only read forwards).
//
// # Wire format
//
// Value: 0xC3 0x01 + 8-byte little-endian CRC-64-AVRO fingerprint + Avro
// binary (single-object encoding, no registry needed), or with a registry
// 0x00 + 4-byte big-endian schema ID + Avro binary (Confluent framing,
// subject "<topic>-<type>", TopicRecordNameStrategy). Headers: see the
// Header* constants.
package schemas
