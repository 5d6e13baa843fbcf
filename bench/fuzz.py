"""Coverage-guided fuzzing of the hostile-input edges with atheris (libFuzzer for Python):
the Avro decoder, the POS file parser (CSV and JSON Lines) and money amounts. The hypothesis
tests (tests/contract/test_hostile_input.py, tests/core/test_limits.py) run in CI; this runs
for as long as asked, and is not collected by pytest.

atheris is not a project dependency (it is a libFuzzer build, for Linux x86-64 wheels only):

    uv pip install --target /tmp/atheris-lib atheris
    PYTHONPATH=/tmp/atheris-lib .venv/bin/python -m bench.fuzz -runs=200000 -max_len=512

libFuzzer's flags pass through (`-runs=N`, `-max_total_time=S`, a corpus directory). Any
exception escaping a target other than the refusal it documents is a finding: libFuzzer stops
and writes the input to `crash-<hash>`. The first byte of an input chooses the target."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["streams"]):
    from streams.contract import Codec
    from streams.contract.codec import SINGLE_OBJECT_MARKER
    from streams.contract.errors import ContractError
    from streams.contract.event_files import ParsedRow, RowError, read_event_file
    from streams.contract.money import MoneyError, to_minor_units

CODEC = Codec()
HEADERS = [SINGLE_OBJECT_MARKER + event.current.fingerprint for event in CODEC.catalog]
SCRATCH = Path(
    tempfile.mkdtemp(prefix="loyalty-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
)


def decode(data: bytes) -> None:
    try:
        CODEC.decode(data)
    except ContractError as error:
        assert str(error).strip(), "a refusal without a reason"


def parse(content: bytes, suffix: str) -> None:
    path = SCRATCH / f"events{suffix}"
    path.write_bytes(content)
    for row in read_event_file(path, currency="EUR"):
        assert isinstance(row, ParsedRow | RowError)
        if isinstance(row, RowError):
            assert row.message.strip(), "a refused row without a reason"
        else:
            try:
                CODEC.encode(row.schema_name, row.record)
            except ContractError as error:
                assert str(error).strip()


def money(text: str) -> None:
    try:
        to_minor_units(text, "EUR")
    except MoneyError as error:
        assert str(error).strip()


def one_input(data: bytes) -> None:
    if not data:
        return
    target, rest = data[0] % 6, data[1:]
    if target == 0:
        decode(rest)
    elif target == 1:  # behind a real header, so the body reader is reached
        decode(HEADERS[rest[0] % len(HEADERS)] + rest[1:] if rest else b"")
    elif target == 2:
        parse(rest, ".csv")
    elif target == 3:
        parse(rest, ".jsonl")
    elif target == 4:  # a CSV with a usable header, so rows reach the value parsers
        parse(b"type,event_id,customer_id,occurred_at,total,total_minor,items,score\n" + rest,
              ".csv")  # fmt: skip
    else:
        money(rest.decode("utf-8", "replace"))


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
