"""What can go wrong between bytes and records. Each error's `error_kind` is the word the worker
writes into `DeadLetter.error_kind`, so a dead letter says which of these it was."""

from __future__ import annotations

from typing import ClassVar


class ContractError(Exception):
    """Base of every error of the event contract."""

    error_kind: ClassVar[str] = "CONTRACT"


class UndecodableError(ContractError):
    """The bytes are not one of our wire formats, or the Avro body under a known schema is
    broken (truncated, trailing bytes, invalid UTF-8, out-of-range union or enum index)."""

    error_kind: ClassVar[str] = "DECODE"


class UnknownSchemaError(ContractError):
    """The writer schema is not one we know (fingerprint or registry id not found, or a name
    outside the contract), or an encode asked for a schema name that does not exist."""

    error_kind: ClassVar[str] = "UNKNOWN_SCHEMA"


class RegistryError(Exception):
    """The schema registry could not be reached or refused a request. Not a ContractError on
    purpose: the record is not at fault, so a worker that dead-letters every ContractError must
    not dead-letter this one; retry or stop instead."""

    error_kind: ClassVar[str] = "REGISTRY"


class RecordInvalidError(ContractError):
    """A record breaks the contract: wrong shape for its schema, or a rule Avro cannot express
    (negative money, quantity below 1, score outside 0..10, empty id, bad currency code).
    `schema_name` is the full name (`loyalty.v1.Purchase`); the message uses the short one
    (`Purchase.total_minor: -3 is negative`).

    Raised by `encode` before anything is written, and by `decode` for a record that decodes
    but breaks the rules; then `event_id` and `customer_id` carry what could be read, for the
    dead letter."""

    error_kind: ClassVar[str] = "CONTRACT"

    def __init__(
        self,
        schema_name: str,
        field: str,
        reason: str,
        *,
        event_id: str | None = None,
        customer_id: str | None = None,
    ) -> None:
        self.schema_name = schema_name
        self.field = field
        self.reason = reason
        self.event_id = event_id
        self.customer_id = customer_id
        short = schema_name.rpartition(".")[2]
        where = f"{short}.{field}" if field else short
        super().__init__(f"{where}: {reason}")
