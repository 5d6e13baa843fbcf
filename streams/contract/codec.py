"""Records to bytes and back, with fastavro, checked against the contract both ways.

Wire formats (the first bytes tell them apart, so a reader takes either):
- Avro single-object encoding (default, no registry): `C3 01`, then the 8-byte little-endian
  CRC-64-AVRO fingerprint of the writer schema's Parsing Canonical Form, then the Avro binary
  body. The reader finds the writer schema by fingerprint among the current schemas and their
  committed history, and resolves it to the current schema.
- Confluent framing (when a schema registry is configured): `00`, the 4-byte big-endian schema
  id, then the body; see `streams.contract.registry`.

Schemas are parsed once, when the codec is built; encode and decode reuse the parsed schemas.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from fastavro import schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError
from fastavro.validation import ValidationError, validate

from streams.contract.catalog import EventSchema, SchemaCatalog, SchemaVersion
from streams.contract.errors import (
    ContractError,
    RecordInvalidError,
    UndecodableError,
    UnknownSchemaError,
)
from streams.contract.rules import RecordCheck, compile_checks, diagnose_shape

if TYPE_CHECKING:
    from streams.settings import Settings

SINGLE_OBJECT_MARKER = b"\xc3\x01"
SINGLE_OBJECT_HEADER_SIZE = len(SINGLE_OBJECT_MARKER) + 8
CONFLUENT_MAGIC = 0
CONFLUENT_HEADER_SIZE = 5


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded record and the full name of its schema (`loyalty.v1.Purchase`, ...).
    Timestamps are timezone-aware UTC datetimes; fields the writer did not know carry the
    current schema's defaults."""

    schema_name: str
    record: dict[str, Any]


class Framing(Protocol):
    """How the writer schema is named in front of the body (the registry's schema id)."""

    name: str

    def header(self, event: EventSchema) -> bytes:
        """The bytes in front of a body written with the event's current schema."""
        ...

    def writer_schema(self, schema_id: int) -> SchemaVersion:
        """The writer schema that a message's schema id names."""
        ...


@dataclass(frozen=True, slots=True)
class _Writing:
    event: EventSchema
    header: bytes
    check: RecordCheck


@dataclass(frozen=True, slots=True)
class _Reading:
    name: str
    full_name: str
    writer: Any
    reader: Any
    check: RecordCheck


class Codec:
    """Encodes and decodes the contract's events. Build one per process (with `make_codec`)
    and share it: it holds the parsed schemas and, with a registry, the schema ids."""

    def __init__(self, catalog: SchemaCatalog | None = None, framing: Framing | None = None):
        self.catalog = catalog or SchemaCatalog.load()
        self.framing = framing
        self._reading_checks = {
            event.name: compile_checks(event.name, event.current.definition, writing=False)
            for event in self.catalog
        }
        self._writing = {
            event.name: _Writing(
                event=event,
                header=SINGLE_OBJECT_MARKER + event.current.fingerprint,
                check=compile_checks(event.name, event.current.definition, writing=True),
            )
            for event in self.catalog
        }
        # Full names are accepted too: `loyalty.v1.Purchase` encodes like `Purchase`.
        for event in self.catalog:
            self._writing[event.full_name] = self._writing[event.name]
        self._by_fingerprint = {
            fingerprint: self._reading_for(version)
            for fingerprint, version in self.catalog.by_fingerprint.items()
        }
        self._registry_headers: dict[str, bytes] = {}
        self._registry_readings: dict[int, _Reading] = {}

    @property
    def wire_format(self) -> str:
        """`single-object` or `confluent`: what `encode` writes."""
        return self.framing.name if self.framing else "single-object"

    @property
    def schema_names(self) -> tuple[str, ...]:
        """Full names of every event schema the codec encodes."""
        return tuple(event.full_name for event in self.catalog)

    def prepare(self) -> None:
        """Registers (or looks up) every schema's id now rather than on first use, so a worker
        does not block on the registry in the middle of its stream. No-op without a registry."""
        if self.framing is not None:
            for event in self.catalog:
                self._header(self._writing[event.name])

    def validate(self, schema_name: str, record: Mapping[str, Any]) -> None:
        """Raises RecordInvalidError, naming the field and why, if `record` breaks the contract.
        Schema names are full names (`loyalty.v1.Purchase`); short ones (`Purchase`) work too."""
        writing = self._writing_for(schema_name)
        self._check(writing, record)

    def encode(self, schema_name: str, record: Mapping[str, Any]) -> bytes:
        """`record` (a dict with every field of the schema; those with defaults may be left out)
        checked and encoded. Datetimes must be timezone-aware. Timestamps keep milliseconds."""
        writing = self._writing_for(schema_name)
        self._check(writing, record)
        out = io.BytesIO()
        out.write(self._header(writing))
        schemaless_writer(out, writing.event.current.parsed, record)
        return out.getvalue()

    def decode(self, data: bytes) -> Decoded:
        """The record in `data` with its schema name, resolved to the current schema and
        checked against the contract's rules."""
        if not data:
            raise UndecodableError("empty message: no bytes to decode")
        if data[:2] == SINGLE_OBJECT_MARKER and len(data) >= SINGLE_OBJECT_HEADER_SIZE:
            fingerprint = bytes(data[2:SINGLE_OBJECT_HEADER_SIZE])
            reading = self._by_fingerprint.get(fingerprint)
            if reading is None:
                raise UnknownSchemaError(
                    f"unknown schema fingerprint 0x{fingerprint.hex()}: written with a schema "
                    "this reader does not know (newer, or not ours)"
                )
            body_start = SINGLE_OBJECT_HEADER_SIZE
        elif data[0] == CONFLUENT_MAGIC and len(data) >= CONFLUENT_HEADER_SIZE:
            reading, body_start = self._registry_reading(data)
        elif data[:2] == SINGLE_OBJECT_MARKER or data[0] == CONFLUENT_MAGIC:
            raise UndecodableError(
                f"header truncated: {len(data)} bytes ({bytes(data).hex(' ')}) cannot hold "
                "a schema fingerprint or id"
            )
        else:
            expected = "Avro single-object encoding"
            if self.framing is not None:
                expected += " nor Confluent framing"
            raise UndecodableError(
                f"not {expected}: first bytes {bytes(data[:8]).hex(' ')} ({len(data)} bytes)"
            )
        record = self._read_body(reading, data, body_start)
        problem = reading.check(record)
        if problem is not None:
            field, reason = problem
            raise RecordInvalidError(
                reading.full_name,
                field,
                reason,
                event_id=_text_or_none(record.get("event_id")),
                customer_id=_text_or_none(record.get("customer_id")),
            )
        return Decoded(reading.full_name, record)

    def _writing_for(self, schema_name: str) -> _Writing:
        try:
            return self._writing[schema_name]
        except KeyError:
            raise UnknownSchemaError(
                f"unknown schema {schema_name!r}; known: {', '.join(self.schema_names)}"
            ) from None

    def _check(self, writing: _Writing, record: Mapping[str, Any]) -> None:
        name = writing.event.full_name
        current = writing.event.current
        if not isinstance(record, Mapping):
            raise RecordInvalidError(name, "", f"{type(record).__name__} is not a record (a dict)")
        # raise_errors=False first: with True, fastavro formats an error for every union branch a
        # value does not take (each non-null optional field), which triples the cost of a valid
        # record. The words come after, for the record that failed.
        if not validate(record, current.parsed, raise_errors=False):
            problem = diagnose_shape(current.definition, record)
            if problem is None:
                problem = ("", _fastavro_complaint(record, current.parsed))
            raise RecordInvalidError(name, *problem)
        problem = writing.check(record)
        if problem is not None:
            field, reason = problem
            raise RecordInvalidError(name, field, reason)

    def _header(self, writing: _Writing) -> bytes:
        if self.framing is None:
            return writing.header
        name = writing.event.name
        header = self._registry_headers.get(name)
        if header is None:
            header = self.framing.header(writing.event)
            self._registry_headers[name] = header
            # our own id: reading it back needs no trip to the registry
            schema_id = int.from_bytes(header[1:CONFLUENT_HEADER_SIZE], "big")
            self._registry_readings[schema_id] = self._reading_for(writing.event.current)
        return header

    def _reading_for(self, version: SchemaVersion) -> _Reading:
        event = self.catalog.event(version.name)
        current = event.current
        same = version.canonical_form == current.canonical_form
        return _Reading(
            name=version.name,
            full_name=event.full_name,
            writer=version.parsed,
            # No reader schema when nothing changed: fastavro then skips resolution.
            reader=None if same else current.parsed,
            check=self._reading_checks[version.name],
        )

    def _registry_reading(self, data: bytes) -> tuple[_Reading, int]:
        schema_id = int.from_bytes(data[1:CONFLUENT_HEADER_SIZE], "big")
        reading = self._registry_readings.get(schema_id)
        if reading is None:
            if self.framing is None:
                raise UnknownSchemaError(
                    f"Confluent framing (magic byte 0, schema id {schema_id}) but no schema "
                    "registry is configured: set SCHEMA_REGISTRY_URL"
                )
            version = self.framing.writer_schema(schema_id)
            reading = self._reading_for(version)
            self._registry_readings[schema_id] = reading
        return reading, CONFLUENT_HEADER_SIZE

    @staticmethod
    def _read_body(reading: _Reading, data: bytes, body_start: int) -> dict[str, Any]:
        body = io.BytesIO(data)
        body.seek(body_start)
        try:
            record = schemaless_reader(body, reading.writer, reading.reader)
        except ContractError:
            raise
        except SchemaResolutionError as error:
            raise UnknownSchemaError(
                f"{reading.name}: the writer schema cannot be resolved to the current one: {error}"
            ) from error
        except EOFError as error:
            raise UndecodableError(
                f"{reading.name} body truncated: the bytes end before the record does"
            ) from error
        except OverflowError as error:
            # the one number fastavro turns into something bounded is a timestamp
            raise UndecodableError(
                f"{reading.name} body undecodable: a timestamp is outside the years 1 to 9999 "
                f"that a date holds, or a number is out of range (OverflowError: {error})"
            ) from error
        except Exception as error:
            # fastavro reports a broken body as whichever error its reader meets first:
            # UnicodeDecodeError, IndexError (union or enum index), ValueError, OverflowError...
            raise UndecodableError(
                f"{reading.name} body undecodable ({type(error).__name__}: {error})"
            ) from error
        trailing = len(data) - body.tell()
        if trailing:
            raise UndecodableError(
                f"{reading.name} body followed by {trailing} unread bytes: not a single record"
            )
        if not isinstance(record, dict):
            raise UndecodableError(f"{reading.name} body did not decode to a record")
        return record


def _fastavro_complaint(record: Mapping[str, Any], parsed: Any) -> str:
    """fastavro's own words for a record it refuses, when our diagnosis found nothing."""
    try:
        validate(record, parsed, raise_errors=True)
    except ValidationError as error:
        return str(error).replace("\n", " ")
    return "refused by fastavro's validation"


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def make_codec(settings: Settings, catalog: SchemaCatalog | None = None) -> Codec:
    """The codec the settings ask for: Confluent framing through the schema registry when
    `schema_registry_url` (SCHEMA_REGISTRY_URL) is set, single-object encoding otherwise."""
    catalog = catalog or SchemaCatalog.load(settings.schema_dir)
    if not settings.schema_registry_url:
        return Codec(catalog)
    from streams.contract.registry import RegistryFraming

    framing = RegistryFraming.connect(
        settings.schema_registry_url, catalog, topic_prefix=settings.topic_prefix
    )
    return Codec(catalog, framing)
