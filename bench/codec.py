"""Rough throughput of the contract codec, against bare fastavro as the floor.

    .venv/bin/python -m bench.codec [--seconds 1.0]

Per schema: records per second for encode (checks + header + body), decode (header lookup +
body + checks), decode of a record written by an older version (resolution to the current
schema), and bare `fastavro.schemaless_writer`/`schemaless_reader` with the same parsed schema.
Single-process, one core; numbers vary with the machine, compare them side by side only.
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from streams.contract import Codec
from streams.contract.catalog import SchemaCatalog, SchemaVersion

AT = datetime(2026, 3, 14, 9, 26, 53, 589000, tzinfo=UTC)
LINE = {"sku": "CF-100", "category": "coffee", "quantity": 2, "unit_price_minor": 350}

RECORDS: dict[str, dict[str, Any]] = {
    "Purchase": {
        "event_id": "pos-1-0001",
        "customer_id": "c-42",
        "store_id": "store-7",
        "occurred_at": AT,
        "currency": "EUR",
        "total_minor": 2100,
        "items": [LINE, LINE, LINE],
    },
    "NpsResponse": {
        "event_id": "nps-9",
        "customer_id": "c-42",
        "store_id": None,
        "occurred_at": AT,
        "score": 9,
        "comment": None,
    },
    "TierChanged": {
        "event_id": "c-42:tier:pos-1-0001",
        "customer_id": "c-42",
        "occurred_at": AT,
        "caused_by": "pos-1-0001",
        "rules_version": "2026.1",
        "previous_tier": "member",
        "new_tier": "silver",
        "direction": "UP",
        "reason": "purchase",
        "rolling_spend_minor": 50_125,
        "currency": "EUR",
        "requalify_at": AT,
    },
}


def rate(operation: Callable[[], object], seconds: float) -> float:
    """Calls per second of `operation`, measured over about `seconds`."""
    calls = 0
    batch = 200
    started = time.perf_counter()
    elapsed = 0.0
    while elapsed < seconds:
        for _ in range(batch):
            operation()
        calls += batch
        elapsed = time.perf_counter() - started
    return calls / elapsed


def older_version(current: SchemaVersion) -> SchemaVersion:
    """The current schema minus its last optional field: stands in for a previous version."""
    definition = dict(current.definition)
    fields = list(definition["fields"])
    while fields and "default" not in fields[-1]:
        fields.pop()
    definition["fields"] = fields[:-1] if fields else fields
    return SchemaVersion.build(current.name, 0, definition)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=1.0, help="per measurement")
    args = parser.parse_args()
    catalog = SchemaCatalog.load()
    codec = Codec(catalog)
    print(
        f"{'schema':<12} {'bytes':>5} {'encode/s':>10} {'decode/s':>10} {'old→new/s':>10} "
        f"{'bare w/s':>10} {'bare r/s':>10}"
    )
    for name, record in RECORDS.items():
        current = catalog.event(name).current
        message = codec.encode(name, record)
        old = older_version(current)
        old_record = {f["name"]: record[f["name"]] for f in old.definition["fields"]}
        old_body = io.BytesIO()
        schemaless_writer(old_body, old.parsed, old_record)
        old_message = b"\xc3\x01" + old.fingerprint + old_body.getvalue()
        # register the stand-in old version the way a committed history version is
        old_codec = Codec(catalog)
        old_codec._by_fingerprint[old.fingerprint] = old_codec._reading_for(old)
        body = message[10:]

        def encode(name: str = name, record: dict[str, Any] = record) -> None:
            codec.encode(name, record)

        def decode(message: bytes = message) -> None:
            codec.decode(message)

        def decode_old(message: bytes = old_message, reader: Codec = old_codec) -> None:
            reader.decode(message)

        def bare_write(schema: Any = current.parsed, data: dict[str, Any] = record) -> None:
            schemaless_writer(io.BytesIO(), schema, data)

        def bare_read(schema: Any = current.parsed, data: bytes = body) -> None:
            schemaless_reader(io.BytesIO(data), schema, None)

        operations = (encode, decode, decode_old, bare_write, bare_read)
        figures = [rate(operation, args.seconds) for operation in operations]
        print(f"{name:<12} {len(message):>5} " + " ".join(f"{f:>10,.0f}" for f in figures))


if __name__ == "__main__":
    main()
