#!/usr/bin/env python3
"""A shop service written the way a Python team writes one: confluent-kafka's
Producer and its stock AvroSerializer against a Confluent-compatible schema
registry, nothing from Reel.

It publishes orders to a topic: per order one OrderPlaced (v2) and then
item_count OrderItemAdded (v1) events, keyed by the order ID, with the
schemas of the catalog (examples/demo/events/catalog/shop/*.avsc) as its own .avsc files.

    python produce_shop.py --bootstrap 127.0.0.1:9092 \
        --registry http://127.0.0.1:8081/apis/ccompat/v7 \
        --schemas ../../../examples/demo/events/catalog/shop [--envelope none|cloudevents] [--orders 20]

--envelope none (default) sends no headers at all. --envelope cloudevents
adds the CloudEvents Kafka protocol binding's binary-mode headers (ce_specversion,
ce_type, ce_id, ce_time, ce_source, ce_subject, content-type); the value is
the same Confluent-framed Avro.

Stock settings worth knowing:
  subject.name.strategy = topic_record_subject_name_strategy: one topic
    carries several record types, so subjects are <topic>-<record full name>
    (the default TopicNameStrategy would put every type of the topic under
    one subject, where they are not compatible with each other).
  partitioner = murmur2_random: the Java client's key hashing, which Reel's
    Go producers use too, so an order lands in the same partition whichever
    language published it (librdkafka's default hashes with CRC32).

Every delivered record is printed to stdout as one JSON line (topic,
partition, offset, key, type, headers, value with timestamps in epoch
milliseconds), so a test can compare what was sent with what it reads.
The exit status is non-zero if any record failed.
"""

import argparse
import datetime
import json
import os
import random
import sys
import uuid

from confluent_kafka import Producer
from confluent_kafka.schema_registry import (
    SchemaRegistryClient,
    topic_record_subject_name_strategy,
)
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

PRODUCTS = ["p-espresso", "p-grinder", "p-filter", "p-mug", "p-scale"]
CURRENCIES = ["EUR", "USD", "GBP"]
CHANNELS = ["web", "app", "store"]


def load_schema(schemas_dir, name):
    with open(os.path.join(schemas_dir, name), encoding="utf-8") as f:
        return f.read()


def millis(dt):
    return int(dt.timestamp() * 1000)


def orders(n, prefix, seed, start):
    """Yields (event type, key, value dict, event time) for n orders."""
    rng = random.Random(seed)
    t = start
    for i in range(1, n + 1):
        order_id = f"{prefix}{i}"
        items = rng.randint(1, 3)
        t += datetime.timedelta(seconds=rng.randint(1, 30))
        yield "shop.OrderPlaced", order_id, {
            "order_id": order_id,
            "customer_id": f"c-{rng.randint(1, 9)}",
            "currency": rng.choice(CURRENCIES),
            "item_count": items,
            "placed_at": millis(t),
            "channel": rng.choice(CHANNELS),
        }, t
        for line in range(1, items + 1):
            t += datetime.timedelta(milliseconds=rng.randint(1, 900))
            yield "shop.OrderItemAdded", order_id, {
                "order_id": order_id,
                "line_no": line,
                "product_id": rng.choice(PRODUCTS),
                "quantity": rng.randint(1, 4),
                "unit_price_cents": rng.randint(100, 20000),
                "added_at": millis(t),
            }, t


def cloudevents_headers(event_type, key, t):
    """The CloudEvents Kafka protocol binding, binary content mode."""
    return [
        ("ce_specversion", b"1.0"),
        ("ce_type", event_type.encode()),
        ("ce_id", str(uuid.uuid4()).encode()),
        ("ce_time", t.isoformat(timespec="milliseconds").replace("+00:00", "Z").encode()),
        ("ce_source", b"/crosslang/python/produce_shop"),
        ("ce_subject", key.encode()),
        ("content-type", b"application/avro"),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--registry", required=True, help="Confluent API base URL")
    ap.add_argument("--schemas", required=True, help="directory with OrderPlaced.v2.avsc and OrderItemAdded.v1.avsc")
    ap.add_argument("--topic", default="shop.orders")
    ap.add_argument("--envelope", choices=["none", "cloudevents"], default="none")
    ap.add_argument("--orders", type=int, default=20)
    ap.add_argument("--prefix", default="py-o-", help="order ID prefix")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    registry = SchemaRegistryClient({"url": args.registry})
    conf = {
        "auto.register.schemas": True,
        "subject.name.strategy": topic_record_subject_name_strategy,
    }
    serializers = {
        "shop.OrderPlaced": AvroSerializer(registry, load_schema(args.schemas, "OrderPlaced.v2.avsc"), conf=conf),
        "shop.OrderItemAdded": AvroSerializer(registry, load_schema(args.schemas, "OrderItemAdded.v1.avsc"), conf=conf),
    }
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "partitioner": "murmur2_random",
        "linger.ms": 5,
    })

    failures = []

    def report(sent):
        def on_delivery(err, msg):
            if err is not None:
                failures.append(f"{sent['type']} {sent['key']}: {err}")
                return
            sent.update(topic=msg.topic(), partition=msg.partition(), offset=msg.offset())
            print(json.dumps(sent, sort_keys=True), flush=True)
        return on_delivery

    start = datetime.datetime(2026, 11, 20, 9, 0, tzinfo=datetime.timezone.utc)
    for event_type, key, value, t in orders(args.orders, args.prefix, args.seed, start):
        headers = cloudevents_headers(event_type, key, t) if args.envelope == "cloudevents" else None
        payload = serializers[event_type](value, SerializationContext(args.topic, MessageField.VALUE, headers))
        sent = {
            "type": event_type,
            "key": key,
            "value": value,
            "headers": {k: v.decode() for k, v in (headers or [])},
        }
        producer.produce(args.topic, key=key.encode(), value=payload, headers=headers, on_delivery=report(sent))
        producer.poll(0)
    left = producer.flush(30)
    if left:
        failures.append(f"{left} records not delivered within 30s")
    for f in failures:
        print(f"produce_shop: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
