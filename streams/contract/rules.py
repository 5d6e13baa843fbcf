"""The contract's rules that Avro cannot express, and readable messages for records of the
wrong shape.

Rules go by field name, because the field names are agreed across every schema: any `*_minor`
is money and never negative, any `*_id` is a non-empty id, `currency` is an ISO 4217 code, and so
on. A schema's checker is compiled once from its definition, so a record costs one pass over the
fields that carry a rule. `DeadLetter` gets no value rules: it carries whatever broke them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from streams.contract.catalog import NAMED_KINDS, PRIMITIVES, full_name_of

Problem = tuple[str, str]
"""A field path (`items[2].quantity`) and what is wrong with its value."""

ValueRule = Callable[[Any], str | None]
NodeCheck = Callable[[Any, str], Problem | None]
RecordCheck = Callable[[Mapping[str, Any]], Problem | None]

CURRENCY_CODE = re.compile(r"[A-Z]{3}")
SCHEMAS_WITHOUT_VALUE_RULES = frozenset({"DeadLetter"})


def _non_negative(value: Any) -> str | None:
    return f"{value} is negative" if value < 0 else None


def _at_least_one(value: Any) -> str | None:
    return f"{value} is below 1" if value < 1 else None


def _nps_score(value: Any) -> str | None:
    return None if 0 <= value <= 10 else f"{value} is outside 0..10"


def _probability(value: Any) -> str | None:
    return None if math.isfinite(value) and 0.0 <= value <= 1.0 else f"{value} is outside 0..1"


def _non_empty(value: Any) -> str | None:
    if value.strip():
        return None
    return f"{value!r} is blank" if value else "is empty"


def _currency_code(value: Any) -> str | None:
    if CURRENCY_CODE.fullmatch(value):
        return None
    return f"{value!r} is not an ISO 4217 code (three upper-case letters, e.g. EUR)"


FIELD_RULES: Mapping[str, ValueRule] = {
    "currency": _currency_code,
    "quantity": _at_least_one,
    "score": _nps_score,
    "p_alive": _probability,
    "points": _non_negative,
    "caused_by": _non_empty,
    "sku": _non_empty,
}


def rule_for(field_name: str) -> ValueRule | None:
    """The value rule of a field, by its agreed name."""
    if field_name in FIELD_RULES:
        return FIELD_RULES[field_name]
    if field_name.endswith("_minor"):
        return _non_negative
    if field_name.endswith("_id"):
        return _non_empty
    return None


def _no_rule(field_name: str) -> ValueRule | None:
    return None


def compile_checks(
    schema_name: str, definition: Mapping[str, Any], *, writing: bool
) -> RecordCheck:
    """The checker of one event schema: returns the first problem of a record, or None.

    `writing` adds what only a writer must honour: no unknown fields (a typo would otherwise be
    dropped silently), time-zone-aware datetimes (fastavro reads a naive one as local time),
    and no enum default symbol (`UNKNOWN` is what an old reader sees for a newer symbol)."""
    without_rules = schema_name.rpartition(".")[2] in SCHEMAS_WITHOUT_VALUE_RULES
    rules = _no_rule if without_rules else rule_for
    check = _compile(definition, None, {}, "", writing, rules)
    if check is None:
        return lambda record: None

    def check_record(record: Mapping[str, Any]) -> Problem | None:
        return check(record, "")

    return check_record


def _compile(
    schema: Any,
    rule: ValueRule | None,
    named: dict[str, Any],
    namespace: str,
    writing: bool,
    rules: Callable[[str], ValueRule | None],
) -> NodeCheck | None:
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return _leaf(rule)
        full_name = schema if "." in schema else f"{namespace}.{schema}"
        return _compile(named[full_name], rule, named, namespace, writing, rules)
    if isinstance(schema, list):
        branches = [branch for branch in schema if branch != "null"]
        if len(branches) == 1:
            return _compile(branches[0], rule, named, namespace, writing, rules)
        return _leaf(rule)
    kind = schema["type"]
    if kind in NAMED_KINDS:
        full_name = full_name_of(schema, namespace)
        named[full_name] = schema
        namespace = full_name.rpartition(".")[0]
    if kind == "record":
        return _compile_record(schema, named, namespace, writing, rules)
    if kind == "enum":
        reserved = schema.get("default")
        return _reserved_symbol(reserved) if writing and reserved is not None else None
    if kind == "array":
        items = _compile(schema["items"], rule, named, namespace, writing, rules)
        return _each(items) if items else None
    if kind == "map":
        values = _compile(schema["values"], rule, named, namespace, writing, rules)
        return _each_value(values) if values else None
    if schema.get("logicalType") == "timestamp-millis" and writing:
        return _aware_time
    return _leaf(rule)


def _compile_record(
    schema: Mapping[str, Any],
    named: dict[str, Any],
    namespace: str,
    writing: bool,
    rules: Callable[[str], ValueRule | None],
) -> NodeCheck | None:
    field_checks: list[tuple[str, NodeCheck]] = []
    for record_field in schema["fields"]:
        name = record_field["name"]
        check = _compile(record_field["type"], rules(name), named, namespace, writing, rules)
        if check is not None:
            field_checks.append((name, check))
    known = frozenset(record_field["name"] for record_field in schema["fields"])
    if not field_checks and not writing:
        return None

    def check_record(value: Any, path: str) -> Problem | None:
        prefix = f"{path}." if path else ""
        if writing:
            unknown = value.keys() - known
            if unknown:
                return f"{prefix}{sorted(unknown)[0]}", "unknown field (misspelt?)"
        for name, check in field_checks:
            field_value = value.get(name)
            if field_value is not None:
                problem = check(field_value, prefix + name)
                if problem is not None:
                    return problem
        return None

    return check_record


def _leaf(rule: ValueRule | None) -> NodeCheck | None:
    if rule is None:
        return None

    def check_value(value: Any, path: str) -> Problem | None:
        reason = rule(value)
        return None if reason is None else (path, reason)

    return check_value


def _each(items: NodeCheck) -> NodeCheck:
    def check_items(value: Any, path: str) -> Problem | None:
        for index, item in enumerate(value):
            if item is not None:
                problem = items(item, f"{path}[{index}]")
                if problem is not None:
                    return problem
        return None

    return check_items


def _each_value(values: NodeCheck) -> NodeCheck:
    def check_values(value: Any, path: str) -> Problem | None:
        for key, item in value.items():
            if item is not None:
                problem = values(item, f"{path}[{key!r}]")
                if problem is not None:
                    return problem
        return None

    return check_values


def _reserved_symbol(reserved: str) -> NodeCheck:
    def check_symbol(value: Any, path: str) -> Problem | None:
        if value == reserved:
            return path, (
                f"{reserved} is only what an older reader sees for a symbol it does not know; "
                "a writer sends a real symbol"
            )
        return None

    return check_symbol


def _aware_time(value: Any, path: str) -> Problem | None:
    if isinstance(value, datetime) and value.tzinfo is None:
        return path, f"{value.isoformat()} has no time zone; give it one (UTC)"
    return None


# ---- shape: readable messages for what fastavro's validation refused ----------------------

_INT_RANGE = (-(2**31), 2**31 - 1)
_LONG_RANGE = (-(2**63), 2**63 - 1)
_DESCRIPTIONS = {
    "null": "null",
    "boolean": "a boolean",
    "int": "an int (32-bit integer)",
    "long": "a long (64-bit integer)",
    "float": "a float",
    "double": "a double",
    "bytes": "bytes",
    "string": "a string",
}


def diagnose_shape(definition: Mapping[str, Any], record: Any) -> Problem | None:
    """The first place where `record` does not fit the schema, in words. Slow, so only run once
    a record is known to be wrong, to say why."""
    return _shape(definition, record, "", {}, "")


def _shape(
    schema: Any, value: Any, path: str, named: dict[str, Any], namespace: str
) -> Problem | None:
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return _primitive_shape(schema, value, path)
        full_name = schema if "." in schema else f"{namespace}.{schema}"
        return _shape(named[full_name], value, path, named, namespace)
    if isinstance(schema, list):
        return _union_shape(schema, value, path, named, namespace)
    kind = schema["type"]
    if kind in NAMED_KINDS:
        full_name = full_name_of(schema, namespace)
        named[full_name] = schema
        namespace = full_name.rpartition(".")[0]
    if kind == "record":
        return _record_shape(schema, value, path, named, namespace)
    if kind == "enum":
        if value in schema["symbols"]:
            return None
        return path, f"{_show(value)} is not one of {', '.join(schema['symbols'])}"
    if kind == "array":
        if not isinstance(value, list | tuple):
            return path, f"{_show(value)} is not an array (a list)"
        for index, item in enumerate(value):
            problem = _shape(schema["items"], item, f"{path}[{index}]", named, namespace)
            if problem is not None:
                return problem
        return None
    if kind == "map":
        if not isinstance(value, Mapping):
            return path, f"{_show(value)} is not a map"
        for key, item in value.items():
            problem = _shape(schema["values"], item, f"{path}[{key!r}]", named, namespace)
            if problem is not None:
                return problem
        return None
    if kind == "fixed":
        if isinstance(value, bytes) and len(value) == schema["size"]:
            return None
        return path, f"{_show(value)} is not {schema['size']} bytes"
    if schema.get("logicalType") == "timestamp-millis":
        if isinstance(value, datetime):
            return None
        problem = _primitive_shape("long", value, path)
        if problem is None:
            return None
        return path, f"{_show(value)} is not a timestamp (an aware datetime or epoch millis)"
    return _shape(kind, value, path, named, namespace)


def _record_shape(
    schema: Mapping[str, Any], value: Any, path: str, named: dict[str, Any], namespace: str
) -> Problem | None:
    if not isinstance(value, Mapping):
        return path, f"{_show(value)} is not a record (a mapping of field names)"
    prefix = f"{path}." if path else ""
    for record_field in schema["fields"]:
        name = record_field["name"]
        if name not in value:
            if "default" in record_field:
                continue
            return prefix + name, "missing"
        problem = _shape(record_field["type"], value[name], prefix + name, named, namespace)
        if problem is not None:
            return problem
    unknown = sorted(set(value) - {record_field["name"] for record_field in schema["fields"]})
    if unknown:
        return prefix + str(unknown[0]), "unknown field (misspelt?)"
    return None


def _union_shape(
    branches: list[Any], value: Any, path: str, named: dict[str, Any], namespace: str
) -> Problem | None:
    problems = [_shape(branch, value, path, named, namespace) for branch in branches]
    if any(problem is None for problem in problems):
        return None
    non_null = [
        problem for branch, problem in zip(branches, problems, strict=True) if branch != "null"
    ]
    if len(non_null) == 1:
        # For the usual optional field ["null", T], T's own complaint is the useful one.
        return non_null[0]
    return path, f"{_show(value)} fits none of the union's branches"


def _primitive_shape(kind: str, value: Any, path: str) -> Problem | None:
    if _fits(kind, value):
        return None
    if value is None:
        return path, f"is null, but must be {_DESCRIPTIONS[kind]}"
    if kind in {"int", "long"} and isinstance(value, int) and not isinstance(value, bool):
        return path, f"{value} is out of the {kind} range"
    return path, f"{_show(value)} is not {_DESCRIPTIONS[kind]}"


def _fits(kind: str, value: Any) -> bool:
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in {"int", "long"}:
        low, high = _INT_RANGE if kind == "int" else _LONG_RANGE
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    if kind in {"float", "double"}:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "bytes":
        return isinstance(value, bytes | bytearray)
    return isinstance(value, str)


def _show(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."
