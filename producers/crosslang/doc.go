// Package crosslang holds producers written in other languages with their
// ecosystem's stock serializers, and the tests that prove Reel reads what
// they write: python/produce_shop.py publishes the shop domain's events with
// confluent-kafka's AvroSerializer through a real Confluent-compatible
// registry, with no headers or with CloudEvents binary-mode headers.
//
//	eval "$(bash scripts/pyenv.sh install)"; export REEL_PYTHON
//	REEL_INTEGRATION=1 REEL_KAFKA_BROKERS=… REEL_REGISTRY_URL=… go test ./producers/crosslang/
//
// crosslang_test.go checks the records on the wire (Confluent framing, the
// schema ID resolving in the registry to the catalog's schema, headers, key
// partitioning). e2e_test.go projects them into
// ClickHouse and compares the SQL results with what the events imply.
package crosslang
