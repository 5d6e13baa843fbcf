"""Can a reader with one schema read what a writer with another wrote? Avro's schema resolution
rules, checked on the schemas alone, so that a change that would break old data or old readers
is caught before it is merged.

For every event schema and each of its committed versions, both directions must hold:
- backward: the current schema reads records written with the old version (consumers deployed
  now read what is already in the topics);
- forward: the old version reads records written with the current schema (consumers not yet
  upgraded read what upgraded producers write; with a registry this happens at run time).

Two rules are stricter than Avro's, because Avro would resolve these silently into wrong data:
- an enum symbol may be added (old readers see the enum's default, UNKNOWN) but never removed:
  old records holding it would read as UNKNOWN;
- a logical type may not change (timestamp-millis to long or timestamp-micros reinterprets every
  value).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from streams.contract.catalog import NAMED_KINDS, PRIMITIVES, EventSchema, full_name_of

PROMOTIONS: Mapping[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}


@dataclass(frozen=True)
class _Node:
    """A schema node with names looked up: its kind, logical type and definition."""

    kind: str
    logical: str | None
    schema: Any


def collect_named(definition: Any, namespace: str = "") -> dict[str, Any]:
    """Every named type defined in a self-contained schema, by full name."""
    named: dict[str, Any] = {}
    _collect(definition, namespace, named)
    return named


def _collect(schema: Any, namespace: str, named: dict[str, Any]) -> None:
    if isinstance(schema, list):
        for branch in schema:
            _collect(branch, namespace, named)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in NAMED_KINDS:
            full_name = full_name_of(schema, namespace)
            named[full_name] = schema
            namespace = full_name.rpartition(".")[0]
            for record_field in schema.get("fields", ()):
                _collect(record_field["type"], namespace, named)
        elif kind == "array":
            _collect(schema["items"], namespace, named)
        elif kind == "map":
            _collect(schema["values"], namespace, named)
        elif isinstance(kind, dict | list):
            _collect(kind, namespace, named)


class _Resolution:
    def __init__(self, reader: Any, writer: Any, *, enum_default_covers: bool) -> None:
        self.reader_named = collect_named(reader)
        self.writer_named = collect_named(writer)
        self.enum_default_covers = enum_default_covers
        # pairs of record names being compared further up: a recursive type stops here
        self.visiting: set[tuple[str, str]] = set()

    def node(self, schema: Any, named: Mapping[str, Any], namespace: str) -> _Node:
        if isinstance(schema, list):
            return _Node("union", None, schema)
        if isinstance(schema, str):
            if schema in PRIMITIVES:
                return _Node(schema, None, schema)
            full_name = schema if "." in schema or not namespace else f"{namespace}.{schema}"
            return self.node(named[full_name], named, namespace)
        kind = schema["type"]
        if isinstance(kind, dict | list) or (
            kind not in PRIMITIVES and kind not in NAMED_KINDS and kind not in {"array", "map"}
        ):
            return self.node(kind, named, namespace)
        return _Node(kind, schema.get("logicalType"), schema)

    def problems(
        self, reader: Any, writer: Any, path: str, namespaces: tuple[str, str] = ("", "")
    ) -> Iterator[str]:
        r = self.node(reader, self.reader_named, namespaces[0])
        w = self.node(writer, self.writer_named, namespaces[1])
        if w.kind == "union":
            for branch in w.schema:
                yield from self.problems(reader, branch, path, namespaces)
            return
        if r.kind == "union":
            for branch in r.schema:
                if not list(self.problems(branch, writer, path, namespaces)):
                    return
            yield f"{path}: the writer's {_describe(w)} fits no branch of the reader's union"
            return
        if r.kind != w.kind and r.kind not in PROMOTIONS.get(w.kind, frozenset()):
            yield f"{path}: type changed from {_describe(w)} (writer) to {_describe(r)} (reader)"
            return
        if r.logical != w.logical:
            yield (
                f"{path}: logical type changed from {w.logical or 'none'} (writer) to "
                f"{r.logical or 'none'} (reader)"
            )
            return
        if r.kind in NAMED_KINDS:
            r_name = full_name_of(r.schema, namespaces[0])
            w_name = full_name_of(w.schema, namespaces[1])
            aliases = {_qualify(alias, r_name) for alias in r.schema.get("aliases", ())}
            if r_name != w_name and w_name not in aliases:
                yield f"{path}: named type changed from {w_name} (writer) to {r_name} (reader)"
                return
            inner = (r_name.rpartition(".")[0], w_name.rpartition(".")[0])
            if r.kind == "record":
                if (r_name, w_name) in self.visiting:
                    return
                self.visiting.add((r_name, w_name))
                yield from self.record_problems(r.schema, w.schema, path, inner)
                self.visiting.discard((r_name, w_name))
            elif r.kind == "enum":
                yield from self.enum_problems(r.schema, w.schema, path)
            elif r.kind == "fixed" and r.schema["size"] != w.schema["size"]:
                yield f"{path}: fixed size changed from {w.schema['size']} to {r.schema['size']}"
        elif r.kind == "array":
            yield from self.problems(r.schema["items"], w.schema["items"], f"{path}[]", namespaces)
        elif r.kind == "map":
            yield from self.problems(
                r.schema["values"], w.schema["values"], f"{path}{{}}", namespaces
            )

    def record_problems(
        self,
        reader: Mapping[str, Any],
        writer: Mapping[str, Any],
        path: str,
        namespaces: tuple[str, str],
    ) -> Iterator[str]:
        writer_fields = {record_field["name"]: record_field for record_field in writer["fields"]}
        for reader_field in reader["fields"]:
            names = [reader_field["name"], *reader_field.get("aliases", ())]
            writer_field = next((writer_fields[n] for n in names if n in writer_fields), None)
            field_path = f"{path}.{reader_field['name']}"
            if writer_field is None:
                if "default" not in reader_field:
                    yield (
                        f"{field_path}: the reader needs it, it has no default, and the writer "
                        "does not write it"
                    )
                continue
            yield from self.problems(
                reader_field["type"], writer_field["type"], field_path, namespaces
            )

    def enum_problems(
        self, reader: Mapping[str, Any], writer: Mapping[str, Any], path: str
    ) -> Iterator[str]:
        missing = [symbol for symbol in writer["symbols"] if symbol not in reader["symbols"]]
        if not missing:
            return
        if self.enum_default_covers and "default" in reader:
            return
        symbols = ", ".join(missing)
        if self.enum_default_covers:
            yield f"{path}: symbols {symbols} unknown to the reader, which has no default"
        else:
            yield f"{path}: symbols {symbols} removed; records holding them would be lost"


def _qualify(alias: str, full_name: str) -> str:
    namespace = full_name.rpartition(".")[0]
    return alias if "." in alias or not namespace else f"{namespace}.{alias}"


def _describe(node: _Node) -> str:
    if node.kind in NAMED_KINDS:
        return f"{node.kind} {full_name_of(node.schema, '')}"
    return f"{node.kind}" + (f" ({node.logical})" if node.logical else "")


def reader_problems(reader: Any, writer: Any, *, enum_default_covers: bool = True) -> list[str]:
    """Why a reader with schema `reader` cannot read what schema `writer` wrote (empty: it can).
    `enum_default_covers=False` refuses to lean on the reader enum's default for symbols the
    reader lacks (the backward check: a symbol must not disappear)."""
    resolution = _Resolution(reader, writer, enum_default_covers=enum_default_covers)
    root = full_name_of(reader, "") if isinstance(reader, dict) and "name" in reader else "root"
    return list(resolution.problems(reader, writer, root.rpartition(".")[2]))


def compatibility_problems(event: EventSchema) -> list[str]:
    """Every way the current schema breaks compatibility with a committed version, both ways."""
    problems = []
    current = event.current.definition
    for old in event.history:
        backward = reader_problems(current, old.definition, enum_default_covers=False)
        problems += [f"backward (current reads v{old.version}): {p}" for p in backward]
        forward = reader_problems(old.definition, current, enum_default_covers=True)
        problems += [f"forward (v{old.version} reads current): {p}" for p in forward]
    return problems
