"""Hypothesis strategies for records of any event schema, built from the schema itself, so a
field added to a schema is generated without touching this file. Values honour the contract's
rules (money >= 0, quantity >= 1, score 0..10, ids non-empty, currency codes); DeadLetter, which
has no value rules, gets unconstrained values. Timestamps have millisecond precision (what Avro's
timestamp-millis keeps), so that a decoded record equals the one encoded."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

from streams.contract.catalog import NAMED_KINDS, PRIMITIVES, full_name_of
from streams.contract.rules import SCHEMAS_WITHOUT_VALUE_RULES

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1

ids = st.text(min_size=1, max_size=24).filter(str.strip)
currencies = st.from_regex(r"[A-Z]{3}", fullmatch=True)
timestamps = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
).map(lambda moment: moment.replace(microsecond=moment.microsecond // 1000 * 1000))


def records(schema_name: str, definition: Any) -> st.SearchStrategy[dict[str, Any]]:
    """Valid records of a self-contained event schema definition."""
    constrained = schema_name not in SCHEMAS_WITHOUT_VALUE_RULES
    return _strategy(definition, "", {}, "", constrained)


def _strategy(
    schema: Any, field_name: str, named: dict[str, Any], namespace: str, constrained: bool
) -> st.SearchStrategy[Any]:
    if isinstance(schema, list):
        return st.one_of(
            *[_strategy(branch, field_name, named, namespace, constrained) for branch in schema]
        )
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return _primitive(schema, field_name, constrained)
        full_name = schema if "." in schema else f"{namespace}.{schema}"
        return _strategy(named[full_name], field_name, named, namespace, constrained)
    kind = schema["type"]
    if kind in NAMED_KINDS:
        full_name = full_name_of(schema, namespace)
        named[full_name] = schema
        namespace = full_name.rpartition(".")[0]
    if kind == "record":
        return st.fixed_dictionaries(
            {
                record_field["name"]: _strategy(
                    record_field["type"], record_field["name"], named, namespace, constrained
                )
                for record_field in schema["fields"]
            }
        )
    if kind == "enum":
        # the default symbol is for readers only: writers never send it
        return st.sampled_from([s for s in schema["symbols"] if s != schema.get("default")])
    if kind == "array":
        items = _strategy(schema["items"], field_name, named, namespace, constrained)
        return st.lists(items, max_size=3)
    if kind == "map":
        values = _strategy(schema["values"], field_name, named, namespace, constrained)
        return st.dictionaries(st.text(max_size=8), values, max_size=3)
    if schema.get("logicalType") == "timestamp-millis":
        return timestamps
    return _primitive(kind, field_name, constrained)


def _primitive(kind: str, field_name: str, constrained: bool) -> st.SearchStrategy[Any]:
    if constrained:
        special = _constrained(kind, field_name)
        if special is not None:
            return special
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "int":
        return st.integers(INT_MIN, INT_MAX)
    if kind == "long":
        return st.integers(LONG_MIN, LONG_MAX)
    if kind == "float":
        return st.floats(width=32, allow_nan=False)
    if kind == "double":
        return st.floats(allow_nan=False)
    if kind == "bytes":
        return st.binary(max_size=32)
    return st.text(max_size=24)


def _constrained(kind: str, field_name: str) -> st.SearchStrategy[Any] | None:
    if kind == "string":
        if field_name == "currency":
            return currencies
        if field_name.endswith("_id") or field_name in {"caused_by", "sku"}:
            return ids
    if kind == "long" and (field_name.endswith("_minor") or field_name == "points"):
        return st.integers(0, LONG_MAX)
    if kind == "int" and field_name == "quantity":
        return st.integers(1, INT_MAX)
    if kind == "int" and field_name == "score":
        return st.integers(0, 10)
    if kind == "double" and field_name == "p_alive":
        return st.floats(0.0, 1.0)
    return None
