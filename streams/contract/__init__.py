"""The event contract: Avro schemas as loaded, the codec and its wire formats.

    codec = make_codec(settings)          # once per process
    data = codec.encode("Purchase", record)
    decoded = codec.decode(data)          # Decoded("loyalty.v1.Purchase", record={...})

Schema names are Avro full names (`loyalty.v1.Purchase`) everywhere; `encode` also takes the
short ones (`Purchase`).

Errors are `ContractError` subclasses; each has the `error_kind` a dead letter records.

The names below are imported on first use, so that importing a light module of this package
(`streams.contract.money`, `streams.contract.topics`) does not load fastavro.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_EXPORTS = {
    "EventSchema": "catalog",
    "SchemaCatalog": "catalog",
    "SchemaVersion": "catalog",
    "Codec": "codec",
    "Decoded": "codec",
    "make_codec": "codec",
    "ContractError": "errors",
    "RecordInvalidError": "errors",
    "RegistryError": "errors",
    "UndecodableError": "errors",
    "UnknownSchemaError": "errors",
    "EVENT_SCHEMAS": "topics",
    "INPUT_SCHEMAS": "topics",
    "NAMESPACE": "topics",
    "OUTPUT_SCHEMAS": "topics",
    "TOPICS": "topics",
    "TopicContract": "topics",
    "topic_of": "topics",
}

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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
