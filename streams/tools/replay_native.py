"""`loyalty replay` on the native engine (`native/`, the Rust extension `loyalty_native`).

The same replay as `streams.tools.replay` (same order, the same state lines and output events,
byte for byte; tests/native holds the two together), about 15 times faster (bench.core): the
extension reads JSON Lines itself, folds every customer through its port of streams/core and
writes the lines. What it leaves to Python, so that both engines read a file alike:
- every JSON Lines row its fast reader is not sure of (anything but plain text fields, integer
  minor units and `...Z` times, every wrong row): `event_files.parse_row` reads it;
- CSV files, read row by row by `event_files.read_event_file` (then folded natively);
- the program, handed over as plain values (`program_values`).
The core's limits (streams/core/limits.py) hold natively too, with the same reasons. Input it
cannot fold exactly (a number beyond 64 bits, in the rules: a file's rows hold none since the
reader refuses them) raises `NativeUnsupportedError`: `--engine auto` then replays with the
Python engine instead."""

from __future__ import annotations

import functools
import gzip
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from streams.contract.event_files import (
    INPUT_KINDS,
    ParsedRow,
    RowError,
    count_rows,
    file_content_id,
    file_format,
    jsonl_row,
    parse_row,
    read_event_file,
)
from streams.core import Program
from streams.core.churn import DAYS_PER_UNIT
from streams.core.events import to_ms

try:
    import loyalty_native
except ImportError:  # not built: `make install` builds it (native/)
    loyalty_native = None


class NativeUnsupportedError(Exception):
    """Input or rules the native engine does not fold exactly; the Python engine does."""


def available() -> bool:
    return loyalty_native is not None


@contextmanager
def refusals() -> Iterator[None]:
    """The extension's refusals (`loyalty_native.Unsupported`) as NativeUnsupportedError."""
    try:
        yield
    except Exception as error:
        if loyalty_native is not None and isinstance(error, loyalty_native.Unsupported):
            raise NativeUnsupportedError(str(error)) from None
        raise


def program_values(program: Program) -> dict[str, Any]:
    """The program as the plain values the extension reads (its names: native/src/lib.rs)."""
    churn = program.churn
    weights = churn.weights
    return {
        "version": program.version,
        "currency": program.currency,
        "tier_names": list(program.tier_names),
        "tier_thresholds": [tier.threshold_minor for tier in program.tiers],
        "points_rate": list(program.points_rate),
        "points_expiry_days": program.points_expiry_days,
        "qualification_window_days": program.qualification_window_days,
        "requalification_days": program.requalification_days,
        "downgrade_warning_days": program.downgrade_warning_days,
        "punch_cards": [(card.category, card.stamps) for card in program.punch_cards],
        "return_window_days": program.return_window_days,
        "complaint_sla_hours": program.complaint_sla_hours,
        "service_recovery_rank": program.service_recovery_rank,
        "attached_visits": program.attached_visits,
        "attached_window_days": program.attached_window_days,
        "category_window_days": program.category_window_days,
        "occasional_from_visits": program.occasional_from_visits,
        "regular_from_visits": program.regular_from_visits,
        "promoter_from_score": program.promoter_from_score,
        "detractor_up_to_score": program.detractor_up_to_score,
        "recent_receipts": program.recent_receipts,
        "longest_window_days": program.longest_window_days,
        "r": churn.params.r,
        "alpha": churn.params.alpha,
        "a": churn.params.a,
        "b": churn.params.b,
        "unit": churn.unit,
        "per_unit": DAYS_PER_UNIT[churn.unit],
        "level_names": list(program.churn_level_names),
        "level_holds": list(program.churn_level_holds),
        "levels_above": [(level.raise_at, level.clear_below) for level in churn.levels.above],
        "w_detractor": weights.detractor,
        "w_overdue_complaint": weights.overdue_complaint,
        "w_falling_average_check": weights.falling_average_check,
        "w_gap_beyond_cadence": weights.gap_beyond_cadence,
        "gap_cadence_factor": weights.gap_cadence_factor,
        "gap_min_repeat_visits": weights.gap_min_repeat_visits,
        "low_p_alive_below": weights.low_p_alive_below,
        "falling_check_ratio": weights.falling_check_ratio,
    }


NativeRow = tuple[
    str, str, str, int, str, int | None, str | None, int | None, str | None, list[tuple[str, int]]
]


def native_row(row: ParsedRow) -> NativeRow:
    """A record read by Python as the extension's row tuple: kind, event id, customer id,
    epoch ms, currency, total_minor or amount_minor, purchase_event_id, score, complaint_id,
    items as (category, quantity)."""
    record = row.record
    kind = row.kind.name
    return (
        kind,
        record["event_id"],
        record["customer_id"],
        to_ms(record["occurred_at"]),
        record.get("currency") or "",
        record.get("total_minor") if kind == "purchase" else record.get("amount_minor"),
        record.get("purchase_event_id"),
        record.get("score"),
        record.get("complaint_id"),
        [(item["category"], item["quantity"]) for item in record.get("items") or ()],
    )


def jsonl_bytes(path: Path) -> bytes | None:
    """The file's bytes for the native reader (decompressed); None to have the Python reader
    read it row by row: a CSV file, and a JSON Lines file that is not plain UTF-8 (a
    byte-order mark, UTF-16, a byte that is not UTF-8, a gzip file cut short), whose rows the
    Python reader reports or takes one by one as `read_event_file` defines."""
    if file_format(path) == "csv":
        return None
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        data.decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError):
        return None
    return None if data.startswith(b"\xef\xbb\xbf") else data


def row_total(path: Path, data: bytes | None) -> int:
    """The reading bar's total: `count_rows`, counted natively for JSON Lines."""
    if data is None or loyalty_native is None:
        return count_rows(path)
    try:
        return int(loyalty_native.Engine.count_jsonl_rows(data))
    except ValueError:
        data.decode("utf-8")  # raises the UnicodeDecodeError the Python reader raises
        raise


def read_into(
    engine: Any,
    path: Path,
    data: bytes | None,
    currency: str,
    default_type: str | None,
    progress: Any,
) -> None:
    """Every row of the file into the engine, as `read_event_file` reads it: a JSON Lines
    file's bytes (`jsonl_bytes`) natively, a CSV file (data None) by Python row by row."""
    if data is None:
        for row in read_event_file(path, default_type=default_type, currency=currency):
            if isinstance(row, RowError):
                engine.add_row(row.line, None, row.message)
            else:
                engine.add_row(row.line, native_row(row), None)
            progress(1)
        return

    @functools.cache
    def file_id() -> str:
        return file_content_id(path)

    def fallback(text: str, line: int) -> NativeRow | str:
        raw = jsonl_row(line, text)
        if isinstance(raw, RowError):
            return raw.message
        row = parse_row(
            raw, line=line, default_type=default_type, currency=currency, file_id=file_id()
        )
        return row.message if isinstance(row, RowError) else native_row(row)

    engine.read_jsonl(data, default_type, fallback, progress)


def new_engine(program: Program) -> Any:
    if loyalty_native is None:
        raise NativeUnsupportedError("the native engine is not built (make install builds native/)")
    try:
        return loyalty_native.Engine(program_values(program))
    except loyalty_native.Unsupported as error:
        raise NativeUnsupportedError(str(error)) from None


def check_default_type(default_type: str | None) -> None:
    if default_type is not None and default_type not in INPUT_KINDS:
        raise ValueError(f"--type {default_type!r} is not one of {', '.join(INPUT_KINDS)}")
