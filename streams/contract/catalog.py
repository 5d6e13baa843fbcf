"""The schemas as loaded: every event schema made self-contained, parsed once, with its Parsing
Canonical Form, its fingerprint and its committed earlier versions.

Layout of `schemas/` (the contract other teams read):
- `schemas/<full name>.avsc`, one file per named type, e.g. `loyalty.v1.Purchase.avsc`,
  `loyalty.v1.LineItem.avsc`, `loyalty.v1.TierDirection.avsc`. A schema refers to a shared
  type by its full name; the type is defined once, in its own file. This is fastavro's
  `FlatDictRepository` convention, so `fastavro.schema.load_schema(path)` reads our files too.
- `schemas/history/<short name>/<n>.avsc`: every released version of an event schema, 1, 2, ...,
  each self-contained (shared types inlined as they were then), the last one equal to the
  current schema. A reader registers all their fingerprints, so records written by an older
  writer still decode, resolved to the current schema.

The event schemas are the ones the topic table names (`streams.contract.topics`); every other
file must be a type that some event uses.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import fingerprint, to_parsing_canonical_form

from streams.contract.errors import ContractError, UnknownSchemaError
from streams.contract.topics import EVENT_SCHEMAS, NAMESPACE, short_name

# Avro's named types: a string type naming anything else refers to a named type.
PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED_KINDS = frozenset({"record", "enum", "fixed", "error"})
FINGERPRINT_ALGORITHM = "CRC-64-AVRO"


def default_schema_dir() -> Path:
    """`schemas/` of the source tree, or its copy `streams/_schemas` inside an installed wheel."""
    packaged = Path(__file__).resolve().parent.parent / "_schemas"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "schemas"


def schema_fingerprint(canonical_form: str) -> bytes:
    """The 8 bytes of the single-object header: CRC-64-AVRO of the Parsing Canonical Form,
    little-endian (fastavro's hex string is already in that byte order)."""
    return bytes.fromhex(fingerprint(canonical_form, FINGERPRINT_ALGORITHM))


@dataclass(frozen=True)
class SchemaVersion:
    """One version of an event schema, ready to write or read with."""

    name: str
    version: int
    definition: Mapping[str, Any]
    parsed: Any = field(repr=False)
    canonical_form: str = field(repr=False)
    fingerprint: bytes

    @classmethod
    def build(cls, name: str, version: int, definition: dict[str, Any]) -> SchemaVersion:
        canonical = to_parsing_canonical_form(definition)
        return cls(
            name=name,
            version=version,
            definition=definition,
            # A fresh parse per version: two versions define the same names differently.
            parsed=parse_schema(definition),
            canonical_form=canonical,
            fingerprint=schema_fingerprint(canonical),
        )

    @property
    def fingerprint_hex(self) -> str:
        return "0x" + self.fingerprint.hex()


@dataclass(frozen=True)
class EventSchema:
    """An event schema: the current version and every committed version (oldest first)."""

    name: str
    current: SchemaVersion
    history: tuple[SchemaVersion, ...]

    @property
    def full_name(self) -> str:
        return f"{NAMESPACE}.{self.name}"


class SchemaCatalog:
    """Every event schema of the contract, loaded and parsed once."""

    def __init__(
        self,
        events: Mapping[str, EventSchema],
        named_types: Mapping[str, Mapping[str, Any]],
        schema_dir: Path,
    ) -> None:
        self.events = dict(events)
        self.named_types = dict(named_types)
        self.schema_dir = schema_dir
        self.by_fingerprint: dict[bytes, SchemaVersion] = {}
        for event in self.events.values():
            for version in (*event.history, event.current):
                self.by_fingerprint.setdefault(version.fingerprint, version)

    @classmethod
    def load(cls, schema_dir: Path | None = None) -> SchemaCatalog:
        schema_dir = schema_dir or default_schema_dir()
        named_types = load_named_types(schema_dir)
        missing = [name for name in EVENT_SCHEMAS if name not in named_types]
        if missing:
            raise ContractError(f"{schema_dir}: no schema file for {', '.join(missing)}")
        events: dict[str, EventSchema] = {}
        used: set[str] = set()
        for full_name in EVENT_SCHEMAS:
            name = short_name(full_name)
            definition = expand(named_types[full_name], named_types)
            used.update(defined_names(definition))
            history = load_history(schema_dir, name)
            # The current schema is the last committed version while nothing changed on the
            # wire, and the next, unrecorded, one after a change (the history test flags that).
            number = history[-1].version if history else 0
            current = SchemaVersion.build(name, number, definition)
            if not history or history[-1].canonical_form != current.canonical_form:
                current = SchemaVersion.build(name, number + 1, definition)
            events[name] = EventSchema(name=name, current=current, history=history)
        orphans = sorted(set(named_types) - used)
        if orphans:
            raise ContractError(
                f"{schema_dir}: {', '.join(orphans)} is neither an event of the topic table "
                "nor used by one"
            )
        return cls(events, named_types, schema_dir)

    def event(self, schema_name: str) -> EventSchema:
        """The event schema by short name (`Purchase`) or full name (`loyalty.v1.Purchase`)."""
        short = schema_name.removeprefix(f"{NAMESPACE}.")
        try:
            return self.events[short]
        except KeyError:
            raise UnknownSchemaError(
                f"unknown schema {schema_name!r}; known: {', '.join(self.events)}"
            ) from None

    def __iter__(self) -> Iterator[EventSchema]:
        return iter(self.events.values())


def load_named_types(schema_dir: Path) -> dict[str, dict[str, Any]]:
    """Every `<full name>.avsc` of the folder, by full name; the file name must match."""
    named: dict[str, dict[str, Any]] = {}
    for path in sorted(schema_dir.glob("*.avsc")):
        try:
            definition = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ContractError(f"{path}: not JSON: {error}") from error
        full_name = full_name_of(definition, "")
        if path.name != f"{full_name}.avsc":
            raise ContractError(
                f"{path}: defines {full_name}, so the file must be {full_name}.avsc"
            )
        named[full_name] = definition
    return named


def load_history(schema_dir: Path, name: str) -> tuple[SchemaVersion, ...]:
    """The committed versions `history/<name>/<n>.avsc`, numbered 1, 2, ... without gaps."""
    folder = schema_dir / "history" / name
    if not folder.is_dir():
        return ()
    files = sorted(folder.glob("*.avsc"), key=_version_number)
    versions = []
    for expected, path in enumerate(files, start=1):
        number = _version_number(path)
        if number != expected:
            raise ContractError(f"{path}: expected version {expected} here (no gaps)")
        definition = json.loads(path.read_text(encoding="utf-8"))
        if full_name_of(definition, "") != f"{NAMESPACE}.{name}":
            raise ContractError(f"{path}: is not a version of {NAMESPACE}.{name}")
        versions.append(SchemaVersion.build(name, number, definition))
    return tuple(versions)


def _version_number(path: Path) -> int:
    try:
        return int(path.stem)
    except ValueError:
        raise ContractError(f"{path}: history files are named <n>.avsc") from None


def full_name_of(definition: Mapping[str, Any], enclosing_namespace: str) -> str:
    """A named type's full name, by Avro's rules (a dotted name is already full)."""
    name = str(definition["name"])
    if "." in name:
        return name
    namespace = definition.get("namespace", enclosing_namespace)
    return f"{namespace}.{name}" if namespace else name


def expand(
    definition: Mapping[str, Any], named_types: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """`definition` made self-contained: each named type it refers to is inlined where it is
    first used (Avro allows one definition per name) and referred to by full name after that."""
    defined: set[str] = set()
    result = _expand(copy.deepcopy(dict(definition)), named_types, "", defined)
    assert isinstance(result, dict)
    return result


def _expand(
    schema: Any, named_types: Mapping[str, Mapping[str, Any]], namespace: str, defined: set[str]
) -> Any:
    if isinstance(schema, list):
        return [_expand(branch, named_types, namespace, defined) for branch in schema]
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return schema
        full_name = schema if "." in schema else f"{namespace}.{schema}" if namespace else schema
        if full_name in defined:
            return full_name
        if full_name not in named_types:
            raise ContractError(f"type {full_name} has no file {full_name}.avsc")
        return _expand(copy.deepcopy(dict(named_types[full_name])), named_types, "", defined)
    kind = schema.get("type")
    if kind in NAMED_KINDS:
        full_name = full_name_of(schema, namespace)
        if full_name in defined:
            raise ContractError(f"{full_name} is defined twice; refer to it by name instead")
        defined.add(full_name)
        inner_namespace = full_name.rpartition(".")[0]
        if kind in {"record", "error"}:
            for record_field in schema["fields"]:
                record_field["type"] = _expand(
                    record_field["type"], named_types, inner_namespace, defined
                )
        return schema
    if kind == "array":
        schema["items"] = _expand(schema["items"], named_types, namespace, defined)
    elif kind == "map":
        schema["values"] = _expand(schema["values"], named_types, namespace, defined)
    return schema


def defined_names(definition: Any, namespace: str = "") -> Iterator[str]:
    """Full names of the named types defined inside a self-contained schema."""
    if isinstance(definition, list):
        for branch in definition:
            yield from defined_names(branch, namespace)
    elif isinstance(definition, dict):
        kind = definition.get("type")
        if kind in NAMED_KINDS:
            full_name = full_name_of(definition, namespace)
            yield full_name
            for record_field in definition.get("fields", ()):
                yield from defined_names(record_field["type"], full_name.rpartition(".")[0])
        elif kind == "array":
            yield from defined_names(definition["items"], namespace)
        elif kind == "map":
            yield from defined_names(definition["values"], namespace)
