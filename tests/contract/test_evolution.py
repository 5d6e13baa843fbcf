"""Schema evolution: records written with one version read with another, both ways, and the
compatibility check that keeps every committed version readable, shown to catch breaking
changes."""

from __future__ import annotations

import copy
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastavro import schemaless_reader, schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.contract import Codec, UnknownSchemaError, history
from streams.contract.catalog import SchemaCatalog
from streams.contract.compat import compatibility_problems, reader_problems
from streams.contract.rules import compile_checks
from tests.contract.conftest import EVENT_NAMES, copy_schemas, edit_schema, field_of, full_name
from tests.contract.samples import SAMPLES
from tests.contract.strategies import records

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CHANNEL = {
    "name": "channel",
    "type": ["null", "string"],
    "default": None,
    "doc": "Where the sale happened (store, web, app); null when unknown.",
}


def add_channel(definition: dict[str, Any]) -> None:
    definition["fields"].append(copy.deepcopy(CHANNEL))


def add_sideways(definition: dict[str, Any]) -> None:
    definition["symbols"].insert(2, "SIDEWAYS")


@pytest.fixture(scope="module")
def evolved(tmp_path_factory: pytest.TempPathFactory) -> SchemaCatalog:
    """The committed schemas plus a compatible change, recorded as version 2: Purchase gains an
    optional field, TierDirection a symbol (so TierChanged changes too)."""
    folder = copy_schemas(tmp_path_factory.mktemp("evolved"))
    edit_schema(folder, "loyalty.v1.Purchase", add_channel)
    edit_schema(folder, "loyalty.v1.TierDirection", add_sideways)
    written = history.record(SchemaCatalog.load(folder))
    assert sorted(path.parent.name for path in written) == ["Purchase", "TierChanged"]
    return SchemaCatalog.load(folder)


def read(writer: Any, reader: Any, record: dict[str, Any]) -> Any:
    out = io.BytesIO()
    schemaless_writer(out, writer.parsed, record)
    out.seek(0)
    return schemaless_reader(out, writer.parsed, reader.parsed)


def test_the_evolved_catalog_knows_both_versions(evolved: SchemaCatalog) -> None:
    purchase = evolved.event("Purchase")
    assert [v.version for v in purchase.history] == [1, 2]
    assert purchase.current.version == 2
    assert compatibility_problems(purchase) == []
    assert compatibility_problems(evolved.event("TierChanged")) == []


def test_a_new_reader_reads_records_an_old_writer_wrote(
    codec: Codec, evolved: SchemaCatalog
) -> None:
    new_codec = Codec(evolved)
    for name in ("Purchase", "TierChanged"):
        decoded = new_codec.decode(codec.encode(name, SAMPLES[name]))
        expected = {**SAMPLES[name], "channel": None} if name == "Purchase" else SAMPLES[name]
        assert (decoded.schema_name, decoded.record) == (full_name(name), expected)


def test_an_old_reader_reads_records_a_new_writer_wrote(
    catalog: SchemaCatalog, evolved: SchemaCatalog
) -> None:
    # Avro resolution with the old schema as reader: the new field is skipped, the new symbol
    # reads as the enum's default
    purchase = {**SAMPLES["Purchase"], "channel": "app"}
    old_purchase = catalog.event("Purchase").current
    assert read(evolved.event("Purchase").current, old_purchase, purchase) == SAMPLES["Purchase"]
    sideways = {**SAMPLES["TierChanged"], "direction": "SIDEWAYS"}
    old_tier = catalog.event("TierChanged").current
    resolved = read(evolved.event("TierChanged").current, old_tier, sideways)
    assert resolved == {**SAMPLES["TierChanged"], "direction": "UNKNOWN"}
    # ...and that record passes the old reader's contract check, so it is not dead-lettered
    assert compile_checks("TierChanged", old_tier.definition, writing=False)(resolved) is None


def test_without_a_registry_an_old_reader_refuses_a_newer_writer(
    codec: Codec, evolved: SchemaCatalog
) -> None:
    # Single-object encoding carries only a fingerprint: a reader resolves the writer schemas it
    # has (current and history), so consumers must be upgraded before producers.
    message = Codec(evolved).encode("Purchase", {**SAMPLES["Purchase"], "channel": "app"})
    with pytest.raises(UnknownSchemaError, match="unknown schema fingerprint"):
        codec.decode(message)


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_current_schemas_are_compatible_with_their_history(
    catalog: SchemaCatalog, name: str
) -> None:
    assert compatibility_problems(catalog.event(name)) == []


@pytest.mark.parametrize("name", EVENT_NAMES)
@FAST
@given(data=st.data())
def test_records_of_every_committed_version_read_both_ways(
    catalog: SchemaCatalog, name: str, data: st.DataObject
) -> None:
    event = catalog.event(name)
    for old in event.history:
        written_old = data.draw(records(name, old.definition))
        read(old, event.current, written_old)
        written_new = data.draw(records(name, event.current.definition))
        read(event.current, old, written_new)


@pytest.mark.parametrize("name", ["Purchase", "TierChanged"])
@FAST
@given(data=st.data())
def test_records_read_both_ways_across_an_evolution(
    evolved: SchemaCatalog, name: str, data: st.DataObject
) -> None:
    event = evolved.event(name)
    old, new = event.history[0], event.current
    written_old = data.draw(records(name, old.definition))
    assert read(old, new, written_old).items() >= written_old.items()
    written_new = data.draw(records(name, new.definition))
    from_new = read(new, old, written_new)
    assert set(from_new) == {f["name"] for f in old.definition["fields"]}


Edit = Callable[[dict[str, Any]], None]


def retype(field: str, new_type: Any) -> Edit:
    return lambda definition: field_of(definition, field).update(type=new_type)


def rename(field: str, new_name: str) -> Edit:
    return lambda definition: field_of(definition, field).update(name=new_name)


BREAKING_CHANGES: list[tuple[str, str, Edit, str]] = [
    (
        "loyalty.v1.Purchase",
        "Purchase",
        lambda d: d["fields"].append({"name": "channel", "type": "string", "doc": "no default"}),
        "backward (current reads v1): Purchase.channel: the reader needs it, it has no default",
    ),
    (
        "loyalty.v1.Purchase",
        "Purchase",
        retype("total_minor", "string"),
        "Purchase.total_minor: type changed from long (writer) to string (reader)",
    ),
    (
        "loyalty.v1.Purchase",
        "Purchase",
        rename("customer_id", "customer"),
        "forward (v1 reads current): Purchase.customer_id: the reader needs it",
    ),
    (
        "loyalty.v1.NpsResponse",
        "NpsResponse",
        retype("occurred_at", "long"),
        "NpsResponse.occurred_at: logical type changed from timestamp-millis (writer) to none",
    ),
    (
        "loyalty.v1.TierDirection",
        "TierChanged",
        lambda d: d["symbols"].remove("DOWN"),
        "backward (current reads v1): TierChanged.direction: symbols DOWN removed",
    ),
    (
        # a shared type's change breaks every event that uses it
        "loyalty.v1.LineItem",
        "Return",
        retype("quantity", "long"),
        "forward (v1 reads current): Return.items[].quantity: type changed from long (writer) "
        "to int (reader)",
    ),
]


@pytest.mark.parametrize(("file", "name", "edit", "problem"), BREAKING_CHANGES)
def test_the_compatibility_check_catches_a_breaking_change(
    tmp_path: Path, file: str, name: str, edit: Edit, problem: str
) -> None:
    folder = copy_schemas(tmp_path)
    edit_schema(folder, file, edit)
    broken = SchemaCatalog.load(folder)
    assert problem in "\n".join(compatibility_problems(broken.event(name)))
    with pytest.raises(ValueError, match="incompatible schema changes"):
        history.record(broken)
    assert history.main(["check", "--schemas", str(folder)]) == 1


def test_the_check_covers_every_committed_version_not_just_the_last(tmp_path: Path) -> None:
    # v2 adds `channel` as a string, v3 drops it again; bringing it back as a long suits v3 but
    # not the v2 records still in the topics
    folder = copy_schemas(tmp_path)
    edit_schema(folder, "loyalty.v1.Purchase", add_channel)
    history.record(SchemaCatalog.load(folder))
    edit_schema(folder, "loyalty.v1.Purchase", lambda d: d["fields"].pop())
    history.record(SchemaCatalog.load(folder))
    edit_schema(
        folder,
        "loyalty.v1.Purchase",
        lambda d: d["fields"].append({**CHANNEL, "type": ["null", "long"]}),
    )
    purchase = SchemaCatalog.load(folder).event("Purchase")
    assert [v.version for v in purchase.history] == [1, 2, 3]
    problems = compatibility_problems(purchase)
    assert problems, "v2 wrote channel as a string"
    assert all("v2" in problem for problem in problems), problems


def test_reader_problems_accepts_avro_promotions_one_way_only(catalog: SchemaCatalog) -> None:
    current = catalog.event("Purchase").current.definition
    widened = copy.deepcopy(dict(current))
    field_of(widened, "items")["type"]["items"]["fields"][2]["type"] = "long"
    assert reader_problems(widened, current) == []  # int data read as long: fine
    assert reader_problems(current, widened) != []  # long data read as int: not


def test_reader_problems_follows_recursive_and_union_types() -> None:
    # not in our schemas today, but a linked list is the classic trap for a resolution walk
    def node(*extra: dict[str, Any], value: str = "int") -> dict[str, Any]:
        fields = [
            {"name": "value", "type": value},
            {"name": "next", "type": ["null", "Node"], "default": None},
        ]
        return {"type": "record", "name": "Node", "namespace": "t", "fields": [*fields, *extra]}

    label = {"name": "label", "type": "string"}
    assert reader_problems(node(), node()) == []
    assert reader_problems(node(value="long"), node()) == []
    assert reader_problems(node(label), node()) == [
        "Node.label: the reader needs it, it has no default, and the writer does not write it"
    ]
    assert reader_problems(node(), node(value="long")) == [
        "Node.value: type changed from long (writer) to int (reader)"
    ]
    assert reader_problems(["null", node()], node()) == []
    assert reader_problems(["null", "string"], node()) != []
