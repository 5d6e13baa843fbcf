"""Confluent framing through a Confluent-compatible schema registry: `00`, the 4-byte big-endian
schema id, then the Avro body (the same body as single-object encoding).

Several schemas share a topic (Purchase and Return on `loyalty.purchases.v1`), so subjects follow
the TopicRecordNameStrategy: `<topic>-<record full name>`, e.g.
`loyalty.purchases.v1-loyalty.v1.Purchase`. What we register is the self-contained schema (shared
types inlined), so a reader needs no schema references. Ids are fetched once per schema and
cached; `Codec.prepare()` fetches them all up front.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from confluent_kafka.schema_registry import (
    Schema,
    SchemaRegistryClient,
    SchemaRegistryError,
    topic_record_subject_name_strategy,
)
from confluent_kafka.serialization import MessageField, SerializationContext

from streams.contract.catalog import (
    EventSchema,
    SchemaCatalog,
    SchemaVersion,
    expand,
    full_name_of,
)
from streams.contract.errors import RegistryError, UnknownSchemaError
from streams.contract.topics import NAMESPACE, topic_of

HTTP_NOT_FOUND = 404


def subject_name(topic: str, full_name: str) -> str:
    """The registry subject of a record type on a topic (TopicRecordNameStrategy)."""
    subject = topic_record_subject_name_strategy(
        SerializationContext(topic, MessageField.VALUE), full_name
    )
    assert subject is not None
    return subject


class RegistryFraming:
    """Writes and reads the Confluent frame, asking the registry for schema ids."""

    name = "confluent"

    def __init__(
        self,
        client: SchemaRegistryClient,
        catalog: SchemaCatalog,
        *,
        topic_prefix: str = "loyalty",
        auto_register: bool = True,
        url: str = "",
    ) -> None:
        self.client = client
        self.catalog = catalog
        self.topic_prefix = topic_prefix
        self.auto_register = auto_register
        self.url = url

    @classmethod
    def connect(
        cls,
        url: str,
        catalog: SchemaCatalog,
        *,
        topic_prefix: str = "loyalty",
        auto_register: bool = True,
        client_config: Mapping[str, Any] | None = None,
    ) -> RegistryFraming:
        """A framing on the registry at `url`; `mock://...` gives confluent-kafka's in-memory
        mock registry (for tests), as `SchemaRegistryClient.new_client` does. `client_config`
        adds the client's own settings (`basic.auth.user.info`, `max.retries`, `timeout`...)."""
        client = SchemaRegistryClient.new_client({**(client_config or {}), "url": url})
        return cls(client, catalog, topic_prefix=topic_prefix, auto_register=auto_register, url=url)

    def subject(self, event: EventSchema) -> str:
        return subject_name(topic_of(event.name).name(self.topic_prefix), event.full_name)

    def schema_id(self, event: EventSchema) -> int:
        """The registry's id of the event's current schema, registering it when allowed."""
        subject = self.subject(event)
        schema = Schema(json.dumps(event.current.definition), "AVRO")
        try:
            if self.auto_register:
                return int(self.client.register_schema(subject, schema))
            return int(self.client.lookup_schema(subject, schema).schema_id)  # type: ignore[arg-type]
        except SchemaRegistryError as error:
            if error.http_status_code == HTTP_NOT_FOUND:
                raise UnknownSchemaError(
                    f"{event.name}: the current schema is not registered under subject "
                    f"{subject} at {self.url or 'the registry'} and auto-registration is off"
                ) from error
            raise RegistryError(
                f"{event.name}: the registry refused subject {subject}: {error}"
            ) from error
        except Exception as error:
            raise RegistryError(
                f"{event.name}: schema registry {self.url} unreachable: {error}"
            ) from error

    def header(self, event: EventSchema) -> bytes:
        return b"\x00" + self.schema_id(event).to_bytes(4, "big")

    def writer_schema(self, schema_id: int) -> SchemaVersion:
        """The writer schema behind a schema id: one of our known versions when the registry's
        schema has the same canonical form, else a version new to us (to be resolved)."""
        schema = self._fetch(schema_id)
        if schema.schema_type not in (None, "AVRO"):
            raise UnknownSchemaError(
                f"schema id {schema_id} is a {schema.schema_type} schema, not Avro"
            )
        definition = json.loads(schema.schema_str or "null")
        if not isinstance(definition, dict) or "name" not in definition:
            raise UnknownSchemaError(f"schema id {schema_id} is not an Avro record schema")
        named = self._references(schema)
        if named:
            definition = expand(definition, named)
        full_name = full_name_of(definition, "")
        short = full_name.removeprefix(f"{NAMESPACE}.")
        if short not in self.catalog.events or full_name == short:
            raise UnknownSchemaError(
                f"schema id {schema_id} is {full_name}, which is not an event of the contract"
            )
        version = SchemaVersion.build(short, 0, definition)
        return self.catalog.by_fingerprint.get(version.fingerprint, version)

    def _fetch(self, schema_id: int) -> Schema:
        try:
            return self.client.get_schema(schema_id)
        except SchemaRegistryError as error:
            if error.http_status_code == HTTP_NOT_FOUND:
                raise UnknownSchemaError(
                    f"unknown schema id {schema_id}: not in the registry {self.url}"
                ) from error
            raise RegistryError(f"schema id {schema_id}: registry error {error}") from error
        except Exception as error:
            raise RegistryError(
                f"schema id {schema_id}: schema registry {self.url} unreachable: {error}"
            ) from error

    def _references(self, schema: Schema) -> dict[str, Any]:
        """Named types a registry schema takes from other subjects (schema references), by full
        name, so that schemas registered by other tools with references still read."""
        named: dict[str, Any] = {}
        for reference in schema.references or ():
            if reference.subject is None or reference.version is None:
                continue
            try:
                registered = self.client.get_version(reference.subject, reference.version)
            except Exception as error:
                raise RegistryError(
                    f"reference {reference.subject} v{reference.version}: {error}"
                ) from error
            named.update(self._references(registered.schema))
            definition = json.loads(registered.schema.schema_str or "null")
            named[full_name_of(definition, "")] = definition
        return named
