// Package producers is the SDK services use to publish Reel events.
//
//	cat, _ := schemas.LoadDir("catalog")
//	codec, _ := schemas.NewCodec(cat, schemas.WithBindings(schemas.BindPayload[OrderPlaced]()))
//	p, _ := producers.Open(codec, kgo.SeedBrokers("127.0.0.1:9092"))
//	defer p.Close()
//	pos, err := p.Publish(ctx, schemas.NewEvent(&OrderPlaced{OrderID: "o-1", …}))
//	// pos[0] = shop.orders/3@1742: hand it to read-your-writes.
//
// # Guarantees of Producer
//
// Key = aggregate ID and Kafka's murmur2 key hashing (the Java producer's),
// so every event of an aggregate lands in one partition and keeps its order;
// acks=all and idempotent writes, so retries neither duplicate nor reorder.
// Publish validates every event (unknown type, empty aggregate ID, payload
// not matching its schema) before sending any of them. Once validated, a
// multi-event Publish is not atomic: a broker failure returns a
// *PublishError naming which events were stored. Use Versioned for
// all-or-nothing appends.
//
// # Optimistic concurrency: Versioned
//
// Kafka has no "append if the partition is at offset N" (KIP-27 was never
// done), so an expected-version check cannot be delegated to the broker.
// Versioned makes it sound with a single writer:
//
//   - One Versioned writer owns a topic, identified by a Kafka transactional
//     ID (default "reel-writer-<topic>"). Opening it calls InitProducerID,
//     which fences any previous instance with that ID (its next append
//     fails with ErrFenced) and aborts its open transaction.
//   - After fencing it reads the topic read_committed to the end offsets and
//     counts events per key: an aggregate's version is its number of events.
//   - Append(ctx, id, expected, events...) holds the aggregate's lock, rejects
//     a stale expected version with ErrConcurrencyConflict, and writes the
//     events in one Kafka transaction (all or nothing), then bumps the
//     version. Update runs a decide function at the current version under
//     the same lock — the command-handler shape used by examples/demo/producers/seats.
//
// Guarantee: among writers that all go through Versioned with the same
// transactional ID, an append succeeds only if the aggregate had exactly the
// expected number of events, counting every event any earlier instance
// committed; a zombie instance can no longer write once a new one opened.
//
// Limits, honestly:
//   - Events published to the topic by anything else (a plain Producer, a
//     Java service) are invisible to the check until the writer reopens.
//   - One writer per topic: appends are serialized through one transactional
//     producer (one transaction at a time, a few ms each on local Kafka, so
//     hundreds of appends per second, not tens of thousands). Sharding by
//     partition — one transactional ID per partition group, ownership handed
//     out by a consumer group — is the way to scale and is not built yet.
//   - Rebuild cost grows with the topic; compacted snapshots are future work.
//   - A reader sees the events only once the transaction commits; consumers
//     must use read_committed (Reel's projectors do).
//   - The rebuild stops at the end offsets taken right after fencing; since
//     commit markers occupy offsets, it treats a 2 s quiet poll as the end.
//
// Demo services built on this package: examples/demo/producers/seats (command handler that
// refuses overbooking, on Versioned) and examples/demo/producers/shop (choreographed saga
// with compensation, on Producer).
package producers
