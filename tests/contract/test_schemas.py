"""The committed .avsc files keep the agreed contract (docs/events.md, the brief other rooms
code against), load the way other Avro tools load them, and are all recorded in the history."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from fastavro.schema import load_schema, to_parsing_canonical_form

from streams.contract import history
from streams.contract.catalog import (
    NAMED_KINDS,
    SchemaCatalog,
    default_schema_dir,
    schema_fingerprint,
)
from streams.contract.errors import ContractError
from streams.contract.topics import TOPICS, short_name, topic_of
from tests.contract.conftest import EVENT_NAMES, copy_schemas, edit_schema, field_of

INPUT_HEAD = ["event_id", "customer_id", "store_id", "occurred_at"]
OUTPUT_HEAD = ["event_id", "customer_id", "occurred_at", "caused_by", "rules_version"]

# The field names as agreed; a schema may add fields (with defaults), never rename or drop one.
AGREED_FIELDS: dict[str, list[str]] = {
    "Purchase": [*INPUT_HEAD, "currency", "total_minor", "items"],
    "Return": [*INPUT_HEAD, "purchase_event_id", "currency", "amount_minor", "items"],
    "NpsResponse": [*INPUT_HEAD, "score", "comment"],
    "ComplaintOpened": [*INPUT_HEAD, "complaint_id", "reason"],
    "ComplaintResolved": [*INPUT_HEAD, "complaint_id", "resolution"],
    "TierChanged": [
        *OUTPUT_HEAD,
        "previous_tier",
        "new_tier",
        "direction",
        "reason",
        "rolling_spend_minor",
        "currency",
        "requalify_at",
    ],
    "TierDowngradeWarning": [
        *OUTPUT_HEAD,
        "current_tier",
        "expected_tier",
        "downgrade_at",
        "rolling_spend_minor",
        "spend_to_keep_minor",
        "currency",
    ],
    "ChurnRiskChanged": [*OUTPUT_HEAD, "level", "previous_level", "p_alive", "reasons"],
    "RewardEarned": [*OUTPUT_HEAD, "reward_kind", "punch_card", "complaint_id", "description"],
    "PointsExpired": [*OUTPUT_HEAD, "points", "last_purchase_at"],
    "DeadLetter": [
        "source_topic",
        "source_partition",
        "source_offset",
        "raw_key",
        "raw_value",
        "error_kind",
        "message",
        "failed_at",
        "event_id",
        "customer_id",
    ],
}
AGREED_TOPICS = {
    "loyalty.purchases.v1": ("Purchase", "Return"),
    "loyalty.feedback.v1": ("NpsResponse", "ComplaintOpened", "ComplaintResolved"),
    "loyalty.tier-changes.v1": ("TierChanged", "TierDowngradeWarning"),
    "loyalty.churn-risk.v1": ("ChurnRiskChanged",),
    "loyalty.rewards.v1": ("RewardEarned", "PointsExpired"),
    "loyalty.dead-letter.v1": ("DeadLetter",),
}
TIMESTAMP = {"type": "long", "logicalType": "timestamp-millis"}
OPTIONAL_TIMESTAMP = ["null", TIMESTAMP]


def source_files() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in default_schema_dir().glob("*.avsc")}


def test_every_agreed_schema_has_its_file_and_topic(catalog: SchemaCatalog) -> None:
    assert set(catalog.events) == set(AGREED_FIELDS)
    assert {t.name(): tuple(map(short_name, t.schemas)) for t in TOPICS} == AGREED_TOPICS
    assert TOPICS[0].schemas == ("loyalty.v1.Purchase", "loyalty.v1.Return")
    assert topic_of("Return").name("shop") == "shop.purchases.v1"


@pytest.mark.parametrize("name", list(AGREED_FIELDS))
def test_agreed_field_names_are_kept_and_additions_have_defaults(
    catalog: SchemaCatalog, name: str
) -> None:
    fields = catalog.event(name).current.definition["fields"]
    names = [f["name"] for f in fields]
    assert [n for n in names if n in AGREED_FIELDS[name]] == AGREED_FIELDS[name]
    added = [f for f in fields if f["name"] not in AGREED_FIELDS[name]]
    assert all("default" in f for f in added), [f["name"] for f in added]


def test_agreed_types() -> None:
    files = source_files()
    for full_name, definition in files.items():
        for record_field in definition.get("fields", ()):
            name, avro_type = record_field["name"], record_field["type"]
            if name.endswith("_minor"):
                assert avro_type in ("long", ["null", "long"]), (full_name, name)
            if name.endswith("_at"):
                assert avro_type in (TIMESTAMP, OPTIONAL_TIMESTAMP), (full_name, name)
            if isinstance(avro_type, list):
                # optional fields: ["null", T] with default null
                assert avro_type[0] == "null" and len(avro_type) == 2, (full_name, name)
                assert record_field.get("default", "absent") is None, (full_name, name)
    purchase = files["loyalty.v1.Purchase"]
    assert field_of(purchase, "items")["type"] == {
        "type": "array",
        "items": "loyalty.v1.LineItem",
    }
    assert field_of(purchase, "items")["default"] == []
    assert field_of(files["loyalty.v1.LineItem"], "quantity")["type"] == "int"
    assert field_of(files["loyalty.v1.ChurnRiskChanged"], "p_alive")["type"] == "double"
    assert field_of(files["loyalty.v1.DeadLetter"], "raw_value")["type"] == ["null", "bytes"]
    assert files["loyalty.v1.TierDirection"]["symbols"][:2] == ["UP", "DOWN"]
    assert files["loyalty.v1.RewardKind"]["symbols"][:2] == ["PUNCH_CARD", "SERVICE_RECOVERY"]


def test_every_type_and_field_is_documented_in_the_loyalty_v1_namespace() -> None:
    for full_name, definition in source_files().items():
        assert definition["namespace"] == "loyalty.v1", full_name
        assert definition.get("doc", "").strip(), full_name
        for record_field in definition.get("fields", ()):
            assert record_field.get("doc", "").strip(), (full_name, record_field["name"])


def test_enums_have_a_default_symbol_for_old_readers() -> None:
    enums = [d for d in source_files().values() if d["type"] == "enum"]
    assert len(enums) == 2
    for enum in enums:
        assert enum["default"] == "UNKNOWN" and enum["symbols"][-1] == "UNKNOWN"


def test_shared_types_are_defined_only_in_their_own_file() -> None:
    def inline_definitions(schema: Any) -> list[str]:
        if isinstance(schema, list):
            return [name for branch in schema for name in inline_definitions(branch)]
        if isinstance(schema, dict):
            found = [schema["name"]] if schema.get("type") in NAMED_KINDS else []
            children = [f["type"] for f in schema.get("fields", ())]
            children += [schema[key] for key in ("items", "values") if key in schema]
            return found + [name for child in children for name in inline_definitions(child)]
        return []

    for full_name, definition in source_files().items():
        nested = [f["type"] for f in definition.get("fields", ())]
        assert inline_definitions(nested) == [], full_name


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_fastavro_loads_our_files_to_the_same_schema(catalog: SchemaCatalog, name: str) -> None:
    # fastavro's own loader (files named <full name>.avsc) must see what our catalog sees
    path = default_schema_dir() / f"loyalty.v1.{name}.avsc"
    loaded = load_schema(str(path), _write_hint=False)
    assert to_parsing_canonical_form(loaded) == catalog.event(name).current.canonical_form


# Parsing Canonical Forms and fingerprints from Avro's own test data
# (share/test/data/schema-tests.txt), where the Java implementation prints the fingerprint as
# a signed 64-bit long; the single-object header carries it little-endian.
AVRO_REFERENCE_FINGERPRINTS = [
    ('"int"', 8247732601305521295),
    ('"string"', -8142146995180207161),
    ('{"name":"x.y.foo","type":"record","fields":[]}', 5916914534497305771),
    (
        '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"}]}',
        7843277075252814651,
    ),
    ('{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}', -4448647247586288245),
    ('{"type":"array","items":"null"}', -589620603366471059),
]


@pytest.mark.parametrize(("canonical", "java_long"), AVRO_REFERENCE_FINGERPRINTS)
def test_fingerprints_match_avro_reference_values(canonical: str, java_long: int) -> None:
    assert schema_fingerprint(canonical) == struct.pack("<q", java_long)


def test_every_current_schema_is_recorded_in_history(catalog: SchemaCatalog) -> None:
    assert [event.name for event in history.unrecorded(catalog)] == [], (
        "schema changed without a history entry: run "
        "`.venv/bin/python -m streams.contract.history record` and commit schemas/history/"
    )
    for event in catalog:
        assert [v.version for v in event.history] == list(range(1, len(event.history) + 1))
        assert event.current.fingerprint == event.history[-1].fingerprint


def test_history_check_flags_an_unrecorded_change(tmp_path: Path) -> None:
    folder = copy_schemas(tmp_path)
    edit_schema(
        folder,
        "loyalty.v1.NpsResponse",
        lambda d: d["fields"].append(
            {"name": "channel", "type": ["null", "string"], "default": None, "doc": "where"}
        ),
    )
    changed = SchemaCatalog.load(folder)
    assert [event.name for event in history.unrecorded(changed)] == ["NpsResponse"]
    assert changed.event("NpsResponse").current.version == 2
    assert history.main(["check", "--schemas", str(folder)]) == 1
    assert history.record(changed) == [folder / "history" / "NpsResponse" / "2.avsc"]
    assert history.main(["check", "--schemas", str(folder)]) == 0


def test_catalog_refuses_a_file_named_after_another_type(tmp_path: Path) -> None:
    folder = copy_schemas(tmp_path)
    (folder / "loyalty.v1.LineItem.avsc").rename(folder / "LineItem.avsc")
    with pytest.raises(ContractError, match=r"must be loyalty\.v1\.LineItem\.avsc"):
        SchemaCatalog.load(folder)


def test_catalog_refuses_a_type_no_event_uses(tmp_path: Path) -> None:
    folder = copy_schemas(tmp_path)
    orphan = {"type": "enum", "name": "Colour", "namespace": "loyalty.v1", "symbols": ["RED"]}
    (folder / "loyalty.v1.Colour.avsc").write_text(json.dumps(orphan))
    with pytest.raises(ContractError, match=r"loyalty\.v1\.Colour is neither an event"):
        SchemaCatalog.load(folder)


def test_catalog_refuses_a_gap_in_history(tmp_path: Path) -> None:
    folder = copy_schemas(tmp_path)
    (folder / "history" / "Purchase" / "1.avsc").rename(folder / "history" / "Purchase" / "2.avsc")
    with pytest.raises(ContractError, match="expected version 1"):
        SchemaCatalog.load(folder)


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_each_event_doc_names_the_topic_of_the_topic_table(
    catalog: SchemaCatalog, name: str
) -> None:
    # the .avsc doc is what a registry browser shows; it must not contradict the topic table
    doc = catalog.named_types[f"loyalty.v1.{name}"]["doc"]
    assert f"Topic {topic_of(name).name()}" in doc or f"({topic_of(name).name()}," in doc
