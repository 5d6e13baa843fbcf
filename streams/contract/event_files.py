"""POS event files: CSV (with a header) or JSON Lines, one event per row, into the contract's
Avro record dicts. The same reader feeds `loyalty publish`, `loyalty replay` and the churn fit,
so a file means the same thing to all of them.

A row names its kind in a `type` column (`purchase`, `return`, `nps`, `complaint_opened`,
`complaint_resolved`), or the caller gives a default kind for files without one. Other
columns are the schema's field names, with two conveniences for people: money may be a decimal
amount in major units under the field's name without `_minor` (`total=11.77`), and
`occurred_at` may be ISO-8601 or `YYYYMMDD`. A row without an `event_id` gets one derived from
the file's content hash and its line number, so publishing the same file twice produces the
same ids and downstream sees the second copy as duplicates.

Nothing in a file raises: a row that cannot become an event is a `RowError` with its line and
the reason, and so is a file that is not UTF-8 text or a broken gzip stream (then the reading
stops there). Times and ids outside the core's limits (`streams.core.limits`) are refused here
too, so `loyalty publish` names their lines before anything is sent."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from streams.contract.money import MoneyError, to_minor_units
from streams.core.limits import AVRO_LONG_MAX, event_time_problem, id_problem

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")
# bytes that are not UTF-8, as the "surrogateescape" error handler leaves them in the text
_NOT_UTF8 = re.compile("[\udc80-\udcff]")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


@dataclass(frozen=True, slots=True)
class InputKind:
    """One kind of POS event: its name in files and its Avro schema (which names its topic:
    streams.contract.topics)."""

    name: str
    schema_name: str


INPUT_KINDS: dict[str, InputKind] = {
    kind.name: kind
    for kind in (
        InputKind("purchase", "loyalty.v1.Purchase"),
        InputKind("return", "loyalty.v1.Return"),
        InputKind("nps", "loyalty.v1.NpsResponse"),
        InputKind("complaint_opened", "loyalty.v1.ComplaintOpened"),
        InputKind("complaint_resolved", "loyalty.v1.ComplaintResolved"),
    )
}
KIND_BY_SCHEMA: dict[str, InputKind] = {kind.schema_name: kind for kind in INPUT_KINDS.values()}


@dataclass(frozen=True, slots=True)
class ParsedRow:
    """A row turned into the record dict of its schema (see docs/events.md)."""

    line: int
    schema_name: str
    record: dict[str, Any]

    @property
    def kind(self) -> InputKind:
        return KIND_BY_SCHEMA[self.schema_name]


@dataclass(frozen=True, slots=True)
class RowError:
    """A row that cannot become an event, with the reason in words."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class RowValueError(ValueError):
    """Raised inside row conversion; becomes a RowError with the row's line number."""


# ---- values ---------------------------------------------------------------------------------


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def parse_occurred_at(value: Any, field_name: str = "occurred_at") -> datetime:
    """ISO-8601 (a naive time is UTC), `YYYYMMDD` (midnight UTC) or epoch milliseconds, to an
    aware UTC datetime truncated to the millisecond that Avro's timestamp-millis keeps."""
    if type(value) is str and value.endswith("Z"):
        # the simulator's and record_to_row's form (2025-03-01T10:15:00.123000Z): a UTC time
        # with nothing to strip or convert; anything fromisoformat refuses takes the long way
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if moment.tzinfo is UTC:
                micros = moment.microsecond
                return (
                    moment
                    if micros % 1000 == 0
                    else moment.replace(microsecond=micros // 1000 * 1000)
                )
    if isinstance(value, bool):
        raise RowValueError(f"{field_name} {value!r} is not a time")
    if isinstance(value, int):
        try:
            moment = _EPOCH + timedelta(milliseconds=value)
        except OverflowError:
            raise RowValueError(
                f"{field_name} {value} (epoch milliseconds) is outside the years 1 to 9999"
            ) from None
    else:
        text = str(value).strip()
        try:
            if len(text) == 8 and text.isdigit():
                moment = datetime.strptime(text, "%Y%m%d").replace(tzinfo=UTC)
            else:
                moment = datetime.fromisoformat(text)
        except ValueError:
            raise RowValueError(
                f"{field_name} {text!r} is neither ISO-8601 (2025-03-01T10:15:00Z) nor YYYYMMDD"
            ) from None
        try:
            moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00+01:00 is in year 0 in UTC
            raise RowValueError(
                f"{field_name} {text!r} is outside the years 1 to 9999 in UTC"
            ) from None
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _text(row: Mapping[str, Any], name: str, *, required: bool) -> str | None:
    value = row.get(name)
    # the common case first (a JSON or CSV string with text in it): the same answer as below
    # without the general checks, which cost more than the rest of a row's parsing
    if type(value) is str:
        stripped = value.strip()
        if stripped:
            return stripped
    if _is_missing(value):
        if required:
            raise RowValueError(f"{name} is missing")
        return None
    if isinstance(value, dict | list):
        raise RowValueError(f"{name} must be text, not {type(value).__name__}")
    return str(value).strip()


def _integer(row: Mapping[str, Any], name: str, *, default: int | None = None) -> int:
    value = row.get(name)
    if type(value) is int and -AVRO_LONG_MAX <= value <= AVRO_LONG_MAX:
        return value  # a JSON number already (never a bool: `type` is exact)
    if _is_missing(value):
        if default is None:
            raise RowValueError(f"{name} is missing")
        return default
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise RowValueError(f"{name} {_shown(value)} is not a whole number")
    if isinstance(value, int | float):
        number = int(value)
    else:
        text = str(value).strip()
        if not _WHOLE_NUMBER.fullmatch(text):
            raise RowValueError(f"{name} {_shown(text)} is not a whole number")
        # no int() of a 5000-digit text: the length says enough
        number = int(text) if len(text.lstrip("+-")) <= 20 else AVRO_LONG_MAX + 1
    if not -AVRO_LONG_MAX <= number <= AVRO_LONG_MAX:
        raise RowValueError(
            f"{name} {_shown(value)} is out of range (at most {AVRO_LONG_MAX} in size)"
        )
    return number


def _shown(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."


def _json(text: str, what: str) -> Any:
    """json.loads, with everything it can raise as a RowValueError."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise RowValueError(f"{what} is not valid JSON: {error.msg}") from None
    except RecursionError:
        raise RowValueError(f"{what} is JSON nested too deeply") from None
    except ValueError as error:  # an integer of more than 4300 digits
        raise RowValueError(f"{what} is not usable JSON: {error}") from None


def _money(row: Mapping[str, Any], name: str, currency: str, *, required: bool) -> int | None:
    """`<name>_minor` as integer minor units, or `<name>` as a decimal amount in major units."""
    minor_field = f"{name}_minor"
    minor = row.get(minor_field)
    if type(minor) is int and row.get(name) is None and 0 <= minor <= AVRO_LONG_MAX:
        return minor  # what record_to_row writes
    has_minor = not _is_missing(row.get(minor_field))
    has_major = not _is_missing(row.get(name))
    if has_minor and has_major:
        raise RowValueError(f"give either {name} or {minor_field}, not both")
    if has_minor:
        return _integer(row, minor_field)
    if has_major:
        try:
            return to_minor_units(row[name], currency)
        except MoneyError as error:
            raise RowValueError(f"{name}: {error}") from None
    if required:
        raise RowValueError(
            f"{name} is missing (a decimal amount, or {minor_field} in minor units)"
        )
    return None


def _line_items(row: Mapping[str, Any], currency: str) -> list[dict[str, Any]]:
    raw = row.get("items")
    if _is_missing(raw):
        return []
    if isinstance(raw, str):
        raw = _json(raw, "items (a JSON list)")
    if not isinstance(raw, list):
        raise RowValueError("items must be a list of {sku, category, quantity, unit_price}")
    items = []
    for position, item in enumerate(raw, start=1):
        if not isinstance(item, dict):
            raise RowValueError(f"items[{position}] is not an object")
        try:
            items.append(
                {
                    "sku": _text(item, "sku", required=True),
                    "category": _text(item, "category", required=False) or "",
                    "quantity": _integer(item, "quantity", default=1),
                    "unit_price_minor": _money(item, "unit_price", currency, required=True),
                }
            )
        except RowValueError as problem:
            raise RowValueError(f"items[{position}].{problem}") from None
    return items


# ---- rows -> records --------------------------------------------------------------------------


def _common(row: Mapping[str, Any], event_id: str) -> dict[str, Any]:
    occurred_at = row.get("occurred_at")
    if _is_missing(occurred_at):
        raise RowValueError("occurred_at is missing")
    moment = parse_occurred_at(occurred_at)
    problem = event_time_problem(moment)
    if problem is not None:
        raise RowValueError(problem)
    return {
        "event_id": _id(event_id, "event_id"),
        "customer_id": _id(_text(row, "customer_id", required=True), "customer_id"),
        "store_id": _text(row, "store_id", required=False),
        "occurred_at": moment,
    }


def _id(value: str | None, name: str) -> str | None:
    problem = None if value is None else id_problem(name, value)
    if problem is not None:
        raise RowValueError(problem)
    return value


def _purchase(row: Mapping[str, Any], common: dict[str, Any], currency: str) -> dict[str, Any]:
    return {
        **common,
        "currency": currency,
        "total_minor": _money(row, "total", currency, required=True),
        "items": _line_items(row, currency),
    }


def _return(row: Mapping[str, Any], common: dict[str, Any], currency: str) -> dict[str, Any]:
    return {
        **common,
        "purchase_event_id": _id(
            _text(row, "purchase_event_id", required=True), "purchase_event_id"
        ),
        "currency": currency,
        "amount_minor": _money(row, "amount", currency, required=False),
        "items": _line_items(row, currency),
    }


def _nps(row: Mapping[str, Any], common: dict[str, Any], _currency: str) -> dict[str, Any]:
    return {
        **common,
        "score": _integer(row, "score"),
        "comment": _text(row, "comment", required=False),
    }


def _complaint_opened(
    row: Mapping[str, Any], common: dict[str, Any], _currency: str
) -> dict[str, Any]:
    return {
        **common,
        "complaint_id": _id(_text(row, "complaint_id", required=True), "complaint_id"),
        "reason": _text(row, "reason", required=False),
    }


def _complaint_resolved(
    row: Mapping[str, Any], common: dict[str, Any], _currency: str
) -> dict[str, Any]:
    return {
        **common,
        "complaint_id": _id(_text(row, "complaint_id", required=True), "complaint_id"),
        "resolution": _text(row, "resolution", required=False),
    }


_BUILDERS: dict[str, Callable[[Mapping[str, Any], dict[str, Any], str], dict[str, Any]]] = {
    "purchase": _purchase,
    "return": _return,
    "nps": _nps,
    "complaint_opened": _complaint_opened,
    "complaint_resolved": _complaint_resolved,
}


def row_to_record(
    row: Mapping[str, Any], *, line: int, default_type: str | None, currency: str, file_id: str
) -> ParsedRow:
    """One file row (already renamed) to its schema's record; raises RowValueError."""
    kind_name = _text(row, "type", required=False) or default_type
    if kind_name is None:
        raise RowValueError(f"type is missing (one of {', '.join(INPUT_KINDS)}), or pass --type")
    kind = INPUT_KINDS.get(kind_name)
    if kind is None:
        raise RowValueError(f"type {kind_name!r} is not one of {', '.join(INPUT_KINDS)}")
    row_currency = (_text(row, "currency", required=False) or currency).upper()
    event_id = _text(row, "event_id", required=False) or derived_event_id(file_id, line)
    record = _BUILDERS[kind.name](row, _common(row, event_id), row_currency)
    return ParsedRow(line=line, schema_name=kind.schema_name, record=record)


def derived_event_id(file_id: str, line: int) -> str:
    """The id of a row that has none: stable for the same file content and line."""
    return f"file-{file_id}-{line}"


# ---- files ------------------------------------------------------------------------------------


def file_content_id(path: Path) -> str:
    """A short hash of the file's bytes (after decompression is not needed: same bytes, same id)."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:20]


def _open_text(path: Path) -> TextIO:
    """The file as text: UTF-8, a leading byte-order mark skipped (Excel writes one), bytes
    that are not UTF-8 kept as lone surrogates for the row that holds them to be refused."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(
            gzip.open(path, "rb"), encoding="utf-8-sig", errors="surrogateescape", newline=""
        )
    return path.open(encoding="utf-8-sig", errors="surrogateescape", newline="")


def _starts_utf16(path: Path) -> bool:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as stream:
            return stream.read(2) in _UTF16_BOMS
    except (OSError, EOFError):  # a broken gzip file: _raw_rows says so
        return False


def _not_utf8(line: int, text: str, where: str) -> RowError | None:
    found = _NOT_UTF8.search(text)
    if found is None:
        return None
    byte = ord(found.group()) - 0xDC00
    return RowError(line, f"{where} is not UTF-8 text (byte 0x{byte:02x}); save the file as UTF-8")


def file_format(path: Path) -> str:
    """'csv' or 'jsonl', from the name (a trailing .gz is looked through)."""
    suffixes = [suffix.lower() for suffix in path.suffixes if suffix.lower() != ".gz"]
    last = suffixes[-1] if suffixes else ""
    if last == ".csv":
        return "csv"
    if last in {".jsonl", ".ndjson", ".json"}:
        return "jsonl"
    raise ValueError(f"{path}: unknown file type {last or '(none)'}; use .csv or .jsonl")


def _raw_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    if _starts_utf16(path):
        yield 1, RowError(1, "the file is UTF-16 text (it starts with a UTF-16 byte-order "
                             "mark); save it as UTF-8")  # fmt: skip
        return
    line = 0
    try:
        with _open_text(path) as stream:
            rows = _csv_rows(stream) if file_format(path) == "csv" else _jsonl_rows(stream)
            for line, row in rows:
                yield line, row
    except (OSError, EOFError) as error:  # gzip: not gzip, or cut short
        yield line + 1, RowError(line + 1, f"the file cannot be read from here on: {error}")


def _jsonl_rows(stream: TextIO) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    for line, text in enumerate(stream, start=1):
        if text.strip():
            yield line, jsonl_row(line, text)


def _csv_rows(stream: TextIO) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    reader = csv.DictReader(stream)
    rows = iter(reader)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as error:  # a field over csv's 128 KiB limit, ...
            # the reader counts the line it refused only once it reads the next one
            line = reader.line_num + 1
            yield line, RowError(line, f"not valid CSV: {error}")
            continue
        # the physical line where the record ends: its own line unless a quoted value spans
        # lines; the header is line 1
        line = reader.line_num
        if None in row:
            yield line, RowError(line, "more values than header columns")
            continue
        broken = _not_utf8(line, "".join(key for key in row if key), "the header") or next(
            (
                problem
                for key, value in row.items()
                if value and (problem := _not_utf8(line, value, f"column {key}")) is not None
            ),
            None,
        )
        yield line, broken or row


def jsonl_row(line: int, text: str) -> dict[str, Any] | RowError:
    """One non-blank JSON Lines line as a row, or why it is not one (also read by the native
    replay engine for the rows it leaves to Python)."""
    broken = _not_utf8(line, text, "the line")
    if broken is not None:
        return broken
    try:
        value = _json(text, "the line")
    except RowValueError as problem:
        return RowError(line, str(problem))
    if not isinstance(value, dict):
        return RowError(line, "a JSON Lines row must be an object")
    return value


def read_event_file(
    path: Path,
    *,
    default_type: str | None = None,
    renames: Mapping[str, str] | None = None,
    currency: str,
) -> Iterator[ParsedRow | RowError]:
    """Every row of a CSV or JSON Lines file, in file order, as a ParsedRow or a RowError.

    `renames` maps our field name to the file's column name (`--map customer_id=cust_no`).
    `currency` is the program's, used where a row names none."""
    if default_type is not None and default_type not in INPUT_KINDS:
        raise ValueError(f"--type {default_type!r} is not one of {', '.join(INPUT_KINDS)}")
    file_id = file_content_id(path)
    column_for = dict(renames or {})
    for line, raw in _raw_rows(path):
        if isinstance(raw, RowError):
            yield raw
            continue
        yield parse_row(
            raw,
            line=line,
            default_type=default_type,
            currency=currency,
            file_id=file_id,
            renames=column_for,
        )


def parse_row(
    raw: Mapping[str, Any],
    *,
    line: int,
    default_type: str | None,
    currency: str,
    file_id: str,
    renames: Mapping[str, str] | None = None,
) -> ParsedRow | RowError:
    """One row of a file as `read_event_file` reads it (the native replay reader asks this for
    every row it is not sure of, so both read a row alike)."""
    row = raw
    if renames:
        row = dict(raw)
        for ours, theirs in renames.items():
            if theirs in row:
                row[ours] = row.pop(theirs)
    try:
        return row_to_record(
            row, line=line, default_type=default_type, currency=currency, file_id=file_id
        )
    except RowValueError as problem:
        return RowError(line, str(problem))


def count_rows(path: Path) -> int:
    """Data rows, for progress bars (a CSV header is not a row; quoted newlines may overcount)."""
    lines = 0
    try:
        with _open_text(path) as stream:
            for text in stream:
                if text.strip():
                    lines += 1
    except (OSError, EOFError):  # a broken gzip file: reading it will say so, by line
        pass
    return max(lines - 1, 0) if file_format(path) == "csv" else lines


# ---- writing the same format back (the simulator writes files that publish reads) -------------


def record_to_row(schema_name: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """A record as a JSON Lines row that `read_event_file` reads back to the same record."""
    row: dict[str, Any] = {"type": KIND_BY_SCHEMA[schema_name].name}
    for name, value in record.items():
        if value is None or (name == "items" and not value):
            continue
        row[name] = value.isoformat().replace("+00:00", "Z") if name == "occurred_at" else value
    return row


@dataclass
class EventFileWriter:
    """Writes records as JSON Lines (or CSV with items as a JSON column) in the publish format."""

    path: Path
    _stream: TextIO | None = field(default=None, init=False)
    _csv: csv.DictWriter[str] | None = field(default=None, init=False)
    rows: int = field(default=0, init=False)

    CSV_COLUMNS = (
        "type", "event_id", "customer_id", "store_id", "occurred_at", "currency", "total_minor",
        "purchase_event_id", "amount_minor", "score", "comment", "complaint_id", "reason",
        "resolution", "items",
    )  # fmt: skip

    def __enter__(self) -> EventFileWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._stream = self.path.open("w", encoding="utf-8", newline="")
        if file_format(self.path) == "csv":
            self._csv = csv.DictWriter(self._stream, fieldnames=self.CSV_COLUMNS)
            self._csv.writeheader()
        return self

    def write(self, schema_name: str, record: Mapping[str, Any]) -> None:
        assert self._stream is not None, "use EventFileWriter as a context manager"
        row = record_to_row(schema_name, record)
        if self._csv is not None:
            if "items" in row:
                row["items"] = json.dumps(row["items"], separators=(",", ":"))
            self._csv.writerow(row)
        else:
            self._stream.write(json.dumps(row, separators=(",", ":")) + "\n")
        self.rows += 1

    def flush(self) -> None:
        if self._stream is not None:
            self._stream.flush()

    def __exit__(self, *exc_info: object) -> None:
        if self._stream is not None:
            self._stream.close()
