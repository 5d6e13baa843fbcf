"""Rough throughput of the contract codec, against bare fastavro as the floor.

    .venv/bin/python -m bench.codec [--seconds 1.0]

Per schema: records per second for encode (checks + header + body), decode (header lookup +
body + checks), decode by a reader one schema version ahead (resolution v1 -> v2), and bare
`fastavro.schemaless_writer`/`schemaless_reader` with the same parsed schema.
Single-process, one core; numbers vary with the machine, compare them side by side only.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from streams.contract import Codec, history
from streams.contract.catalog import SchemaCatalog, default_schema_dir

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


def evolved_catalog(folder: Path) -> SchemaCatalog:
    """Our schemas in `folder` with one optional field added to each benched event and the
    change recorded: decoding what today's codec writes then resolves version 1 to version 2,
    the path a reader takes after a compatible schema change."""
    shutil.copytree(default_schema_dir(), folder)
    for name in RECORDS:
        path = folder / f"loyalty.v1.{name}.avsc"
        definition = json.loads(path.read_text())
        definition["fields"].append(
            {"name": "channel", "type": ["null", "string"], "default": None, "doc": "bench"}
        )
        path.write_text(json.dumps(definition))
    history.record(SchemaCatalog.load(folder))
    return SchemaCatalog.load(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=1.0, help="per measurement")
    args = parser.parse_args()
    codec = Codec(SchemaCatalog.load())
    with tempfile.TemporaryDirectory() as scratch:
        newer_reader = Codec(evolved_catalog(Path(scratch) / "schemas"))
    print(
        f"{'schema':<12} {'bytes':>5} {'encode/s':>10} {'decode/s':>10} {'v1→v2/s':>10} "
        f"{'bare w/s':>10} {'bare r/s':>10}"
    )
    for name, record in RECORDS.items():
        parsed = codec.catalog.event(name).current.parsed
        message = codec.encode(name, record)
        body = message[10:]

        def encode(name: str = name, record: dict[str, Any] = record) -> None:
            codec.encode(name, record)

        def decode(message: bytes = message) -> None:
            codec.decode(message)

        def decode_resolving(message: bytes = message) -> None:
            newer_reader.decode(message)

        def bare_write(schema: Any = parsed, data: dict[str, Any] = record) -> None:
            schemaless_writer(io.BytesIO(), schema, data)

        def bare_read(schema: Any = parsed, data: bytes = body) -> None:
            schemaless_reader(io.BytesIO(data), schema, None)

        operations = (encode, decode, decode_resolving, bare_write, bare_read)
        figures = [rate(operation, args.seconds) for operation in operations]
        print(f"{name:<12} {len(message):>5} " + " ".join(f"{f:>10,.0f}" for f in figures))


if __name__ == "__main__":
    main()
