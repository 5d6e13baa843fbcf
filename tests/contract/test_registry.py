"""The codec with a schema registry: Confluent framing, TopicRecordNameStrategy subjects, and
interoperability with confluent-kafka's own Avro serializer and deserializer.

Most run against confluent-kafka's in-memory mock registry (`mock://` URLs, the client's
`MockSchemaRegistryClient`): no Confluent-compatible registry server could be installed here
(Apicurio's Maven artifacts need modules Maven Central does not serve; Karapace is not on PyPI).
The client's real HTTP path runs against `fake_registry`, a loopback stand-in for the three REST
calls we make, and against a closed port for the unreachable-registry error."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import Schema, topic_record_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from streams.contract import (
    Codec,
    ContractError,
    RegistryError,
    UnknownSchemaError,
    history,
    make_codec,
)
from streams.contract.catalog import SchemaCatalog
from streams.contract.registry import RegistryFraming
from streams.contract.topics import topic_of
from streams.settings import Settings
from tests.contract.conftest import EVENT_NAMES, copy_schemas, edit_schema, full_name
from tests.contract.fake_registry import fake_registry
from tests.contract.samples import SAMPLES


@pytest.fixture
def framing(catalog: SchemaCatalog, request: pytest.FixtureRequest) -> RegistryFraming:
    # a mock registry per test: MockSchemaRegistryClient keeps its store per client
    name = re.sub(r"\W", "-", request.node.name)
    return RegistryFraming.connect(f"mock://{name}", catalog)


@pytest.fixture
def registry_codec(catalog: SchemaCatalog, framing: RegistryFraming) -> Codec:
    return Codec(catalog, framing)


def value_context(name: str) -> SerializationContext:
    return SerializationContext(topic_of(name).name(), MessageField.VALUE)


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_every_sample_round_trips_in_confluent_framing(
    registry_codec: Codec, framing: RegistryFraming, name: str
) -> None:
    message = registry_codec.encode(name, SAMPLES[name])
    assert message[0] == 0
    schema_id = int.from_bytes(message[1:5], "big")
    registered = json.loads(framing.client.get_schema(schema_id).schema_str or "")
    assert registered["name"] == name and registered["namespace"] == "loyalty.v1"
    decoded = registry_codec.decode(message)
    assert (decoded.schema_name, decoded.record) == (full_name(name), SAMPLES[name])


def test_subjects_follow_the_topic_record_name_strategy(
    registry_codec: Codec, framing: RegistryFraming
) -> None:
    registry_codec.prepare()
    subjects = set(framing.client.get_subjects())
    assert "loyalty.purchases.v1-loyalty.v1.Purchase" in subjects
    assert "loyalty.purchases.v1-loyalty.v1.Return" in subjects
    assert "loyalty.dead-letter.v1-loyalty.v1.DeadLetter" in subjects
    assert len(subjects) == len(EVENT_NAMES)


def test_confluents_deserializer_reads_what_the_codec_writes(
    registry_codec: Codec, framing: RegistryFraming
) -> None:
    deserializer = AvroDeserializer(framing.client)
    for name in ("Purchase", "TierChanged", "DeadLetter"):
        message = registry_codec.encode(name, SAMPLES[name])
        assert deserializer(message, value_context(name)) == SAMPLES[name]


def test_the_codec_reads_what_confluents_serializer_writes(
    catalog: SchemaCatalog, registry_codec: Codec, framing: RegistryFraming
) -> None:
    for name in ("Return", "RewardEarned"):
        serializer = AvroSerializer(
            framing.client,
            json.dumps(catalog.event(name).current.definition),
            conf={"subject.name.strategy": topic_record_subject_name_strategy},
        )
        message = serializer(SAMPLES[name], value_context(name))
        assert message is not None
        decoded = registry_codec.decode(message)
        assert (decoded.schema_name, decoded.record) == (full_name(name), SAMPLES[name])


def test_a_registry_codec_still_reads_single_object_messages(
    codec: Codec, registry_codec: Codec
) -> None:
    # so consumers can switch to a registry while older messages are still in the topics
    message = codec.encode("NpsResponse", SAMPLES["NpsResponse"])
    assert registry_codec.decode(message).record == SAMPLES["NpsResponse"]


def test_unknown_ids_and_foreign_schemas_are_unknown_schemas(
    registry_codec: Codec, framing: RegistryFraming
) -> None:
    with pytest.raises(UnknownSchemaError, match="unknown schema id 999"):
        registry_codec.decode(b"\x00\x00\x00\x03\xe7\x00")
    foreign = {"type": "record", "name": "Order", "namespace": "shop", "fields": []}
    foreign_id = framing.client.register_schema("orders-value", Schema(json.dumps(foreign), "AVRO"))
    with pytest.raises(UnknownSchemaError, match=r"shop\.Order, which is not an event"):
        registry_codec.decode(b"\x00" + foreign_id.to_bytes(4, "big"))


def test_an_old_reader_resolves_a_newer_writer_through_the_registry(
    tmp_path: Path, catalog: SchemaCatalog, registry_codec: Codec, framing: RegistryFraming
) -> None:
    # unlike single-object encoding, the registry hands an old reader the new writer schema
    folder = copy_schemas(tmp_path)
    edit_schema(
        folder,
        "loyalty.v1.Purchase",
        lambda d: d["fields"].append(
            {"name": "channel", "type": ["null", "string"], "default": None, "doc": "where"}
        ),
    )
    history.record(SchemaCatalog.load(folder))
    new_writer = Codec(SchemaCatalog.load(folder), RegistryFraming(framing.client, catalog))
    message = new_writer.encode("Purchase", {**SAMPLES["Purchase"], "channel": "web"})
    decoded = registry_codec.decode(message)
    assert (decoded.schema_name, decoded.record) == ("loyalty.v1.Purchase", SAMPLES["Purchase"])
    subject = "loyalty.purchases.v1-loyalty.v1.Purchase"
    assert framing.client.get_versions(subject) == [1]  # only the new writer registered here


def test_without_auto_registration_an_unregistered_schema_is_refused(
    catalog: SchemaCatalog,
) -> None:
    framing = RegistryFraming.connect("mock://no-auto", catalog, auto_register=False)
    with pytest.raises(UnknownSchemaError, match="not registered under subject"):
        Codec(catalog, framing).encode("Purchase", SAMPLES["Purchase"])


def test_an_unreachable_registry_is_a_registry_error(catalog: SchemaCatalog) -> None:
    # port 9 on loopback: nothing listens, the connection is refused at once
    framing = RegistryFraming.connect(
        "http://127.0.0.1:9", catalog, client_config={"max.retries": 0, "timeout": 2}
    )
    codec = Codec(catalog, framing)
    with pytest.raises(RegistryError, match="unreachable"):
        codec.encode("Purchase", SAMPLES["Purchase"])
    with pytest.raises(RegistryError, match="schema id 5"):
        codec.decode(b"\x00\x00\x00\x00\x05\x00")
    # the record is not at fault: a worker dead-lettering ContractErrors must let this through
    assert not issubclass(RegistryError, ContractError)


def test_make_codec_picks_the_wire_format_from_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SCHEMA_REGISTRY_URL", raising=False)
    monkeypatch.delenv("LOYALTY_SCHEMA_REGISTRY_URL", raising=False)
    assert make_codec(Settings.load()).wire_format == "single-object"
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", "mock://from-env")
    settings = Settings.load(topic_prefix="shop")
    codec = make_codec(settings)
    assert codec.wire_format == "confluent"
    codec.encode("Return", SAMPLES["Return"])
    assert isinstance(codec.framing, RegistryFraming)
    assert codec.framing.client.get_subjects() == ["shop.purchases.v1-loyalty.v1.Return"]


def test_the_real_http_client_registers_once_and_fetches_each_id_once(
    catalog: SchemaCatalog,
) -> None:
    # confluent-kafka's HTTP client (not the mock) against a loopback stand-in: subjects are
    # URL-encoded right, and both caches (the client's and the codec's) hold
    with fake_registry() as (url, state):
        writer = make_codec(Settings.load(schema_registry_url=url))
        reader = make_codec(Settings.load(schema_registry_url=url))
        messages = [writer.encode(name, SAMPLES[name]) for name in ("Purchase", "Return") * 3]
        decoded = [reader.decode(message) for message in messages]
        with pytest.raises(UnknownSchemaError, match="unknown schema id 77"):
            reader.decode(b"\x00\x00\x00\x00\x4d\x00")
        requests = list(state.requests)
    assert [d.record for d in decoded] == [SAMPLES[name] for name in ("Purchase", "Return") * 3]
    assert requests == [
        ("POST", "/subjects/loyalty.purchases.v1-loyalty.v1.Purchase/versions"),
        ("POST", "/subjects/loyalty.purchases.v1-loyalty.v1.Return/versions"),
        ("GET", "/schemas/ids/1"),
        ("GET", "/schemas/ids/2"),
        ("GET", "/schemas/ids/77"),
    ]


def test_lookup_without_auto_registration_over_http(catalog: SchemaCatalog) -> None:
    with fake_registry() as (url, state):
        framing = RegistryFraming.connect(url, catalog, auto_register=False)
        codec = Codec(catalog, framing)
        with pytest.raises(UnknownSchemaError, match="not registered under subject"):
            codec.encode("NpsResponse", SAMPLES["NpsResponse"])
        subject = "loyalty.feedback.v1-loyalty.v1.NpsResponse"
        state.register(subject, json.dumps(catalog.event("NpsResponse").current.definition))
        message = codec.encode("NpsResponse", SAMPLES["NpsResponse"])
        assert codec.decode(message).record == SAMPLES["NpsResponse"]
    assert message[:5] == b"\x00\x00\x00\x00\x01"


def test_after_prepare_a_codec_reads_its_own_schemas_without_asking(
    catalog: SchemaCatalog,
) -> None:
    with fake_registry() as (url, state):
        codec = make_codec(Settings.load(schema_registry_url=url))
        codec.prepare()
        registered = list(state.requests)
        message = codec.encode("ChurnRiskChanged", SAMPLES["ChurnRiskChanged"])
        decoded = codec.decode(message)
        requests_after = state.requests[len(registered) :]
    assert len(registered) == len(EVENT_NAMES)
    assert all(method == "POST" for method, _ in registered)
    assert requests_after == []
    assert decoded.record == SAMPLES["ChurnRiskChanged"]
