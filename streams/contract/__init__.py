"""The event contract: Avro schemas as loaded, the codec and its wire formats.

    codec = make_codec(settings)          # once per process
    data = codec.encode("Purchase", record)
    decoded = codec.decode(data)          # Decoded(schema_name="Purchase", record={...})

Errors are `ContractError` subclasses; each has the `error_kind` a dead letter records.
"""

from streams.contract.catalog import EventSchema, SchemaCatalog, SchemaVersion
from streams.contract.codec import Codec, Decoded, make_codec
from streams.contract.errors import (
    ContractError,
    RecordInvalidError,
    RegistryError,
    UndecodableError,
    UnknownSchemaError,
)
from streams.contract.topics import (
    EVENT_SCHEMAS,
    INPUT_SCHEMAS,
    NAMESPACE,
    OUTPUT_SCHEMAS,
    TOPICS,
    TopicContract,
    topic_of,
)

__all__ = [
    "EVENT_SCHEMAS",
    "INPUT_SCHEMAS",
    "NAMESPACE",
    "OUTPUT_SCHEMAS",
    "TOPICS",
    "Codec",
    "ContractError",
    "Decoded",
    "EventSchema",
    "RecordInvalidError",
    "RegistryError",
    "SchemaCatalog",
    "SchemaVersion",
    "TopicContract",
    "UndecodableError",
    "UnknownSchemaError",
    "make_codec",
    "topic_of",
]
