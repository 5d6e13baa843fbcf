"""The Kafka ACLs each component needs, least privilege, in one place: rendered as
`kafka-acls.sh` lines for the README and ops (`loyalty kafka acls`), and as AclBindings that
the security tests apply to a broker with an authorizer before running each component as
its own user.

- worker: read the inputs, write the outputs and dead letters, read/write/create its own
  topics under `<app id>-` (the table's changelog, the tick topic, Faust's leader topic),
  the consumer group `<app id>`, and under exactly_once the transactional ids `<app id>-`;
- publisher: write the input topics (idempotence needs nothing more since Kafka 3.0);
- reader (audit, tail, export, status): read every topic of ours and the changelog,
  describe the workers' group (its committed offsets, for lag and `status`), and use
  consumer groups under `loyalty-reader-` (librdkafka's consumers need one, even to read
  assigned partitions: see `READER_GROUP_PREFIX`).

Kafka implies Describe from Read and Write, so it is not granted apart."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from streams.broker.client import READER_GROUP_PREFIX, admin_client
from streams.broker.errors import BrokerError
from streams.broker.security import KafkaTarget
from streams.broker.topics import TopicNames
from streams.worker.envelope import CUSTOMER_TABLE

if TYPE_CHECKING:
    from confluent_kafka.admin._acl import AclBinding

Resource = Literal["topic", "group", "transactional-id"]
Operation = Literal["Read", "Write", "Create", "Describe"]
Component = Literal["worker", "publisher", "reader"]


@dataclass(frozen=True)
class Grant:
    """Operations on resources of one kind: literal names, or name prefixes."""

    resource: Resource
    names: tuple[str, ...]
    operations: tuple[Operation, ...]
    prefixed: bool = False


def grants(topics: TopicNames, app_id: str) -> dict[Component, list[Grant]]:
    changelog = f"{app_id}-{CUSTOMER_TABLE}-changelog"
    everything = (*topics.all, changelog)
    return {
        "worker": [
            Grant("topic", topics.inputs, ("Read",)),
            Grant("topic", (*topics.outputs, topics.dead_letter), ("Write",)),
            Grant("topic", (f"{app_id}-",), ("Read", "Write", "Create"), prefixed=True),
            Grant("group", (app_id,), ("Read",)),
            Grant("transactional-id", (f"{app_id}-",), ("Write",), prefixed=True),
        ],
        "publisher": [Grant("topic", topics.inputs, ("Write",))],
        "reader": [
            Grant("topic", everything, ("Read",)),
            Grant("group", (app_id,), ("Describe",)),
            Grant("group", (READER_GROUP_PREFIX,), ("Read",), prefixed=True),
        ],
    }


def kafka_acls_lines(principal: str, component_grants: Iterable[Grant]) -> list[str]:
    """`kafka-acls.sh --add` commands granting `principal` (`User:name`) these grants."""
    lines = []
    for grant in component_grants:
        parts = ["kafka-acls.sh --bootstrap-server $KAFKA --command-config admin.properties"]
        parts.append(f"--add --allow-principal {principal}")
        parts += [f"--operation {operation}" for operation in grant.operations]
        if grant.prefixed:
            parts.append("--resource-pattern-type prefixed")
        parts += [f"--{grant.resource} {name}" for name in grant.names]
        lines.append(" ".join(parts))
    return lines


def acl_bindings(principal: str, component_grants: Iterable[Grant]) -> list[AclBinding]:
    """The same grants as AclBindings, for `AdminClient.create_acls`."""
    # the admin package's own modules: it re-exports them without __all__, which mypy refuses
    from confluent_kafka.admin import _acl, _resource

    kinds = {
        "topic": _resource.ResourceType.TOPIC,
        "group": _resource.ResourceType.GROUP,
        "transactional-id": _resource.ResourceType.TRANSACTIONAL_ID,
    }
    patterns = _resource.ResourcePatternType
    return [
        _acl.AclBinding(
            kinds[grant.resource],
            name,
            patterns.PREFIXED if grant.prefixed else patterns.LITERAL,
            principal,
            "*",
            _acl.AclOperation[operation.upper()],
            _acl.AclPermissionType.ALLOW,
        )
        for grant in component_grants
        for name in grant.names
        for operation in grant.operations
    ]


def apply_acls(
    admin_kafka: KafkaTarget, bindings: list[AclBinding], timeout_s: float = 30.0
) -> None:
    """Creates the ACLs through an admin connection and returns once the broker enforces
    them: the controller commits them first, the brokers' authorizers apply them from the
    metadata log a moment later."""
    from confluent_kafka.admin import _acl, _resource

    admin = admin_client(admin_kafka)
    for future in admin.create_acls(bindings).values():
        future.result()
    everything = _acl.AclBindingFilter(
        _resource.ResourceType.ANY,
        None,  # type: ignore[arg-type]  # None matches any name, as librdkafka documents
        _resource.ResourcePatternType.ANY,
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        _acl.AclOperation.ANY,
        _acl.AclPermissionType.ANY,
    )
    deadline = time.monotonic() + timeout_s
    while not set(bindings) <= set(admin.describe_acls(everything).result()):
        if time.monotonic() > deadline:
            raise BrokerError(f"the broker did not apply the ACLs within {timeout_s:.0f} s")
        time.sleep(0.1)
