"""Which event schemas travel on which topic, and what the message key is. The one place for
these facts: the worker, the topic admin, the registry subjects and docs/events.md read it."""

from __future__ import annotations

from dataclasses import dataclass

from streams.contract.errors import UnknownSchemaError

NAMESPACE = "loyalty.v1"


def full_name(schema_name: str) -> str:
    """`loyalty.v1.Purchase` for `Purchase` (a full name stays as it is)."""
    return schema_name if "." in schema_name else f"{NAMESPACE}.{schema_name}"


def short_name(schema_name: str) -> str:
    """`Purchase` for `loyalty.v1.Purchase`."""
    return schema_name.rpartition(".")[2]


def _full(*names: str) -> tuple[str, ...]:
    return tuple(full_name(name) for name in names)


@dataclass(frozen=True)
class TopicContract:
    """One topic: its name after the prefix, its key and the schemas it carries (full names)."""

    suffix: str
    key: str
    schemas: tuple[str, ...]
    role: str
    doc: str

    def name(self, prefix: str = "loyalty") -> str:
        """Full topic name, e.g. `loyalty.purchases.v1` for the default prefix."""
        return f"{prefix}.{self.suffix}"


CUSTOMER_KEY = "customer_id (UTF-8)"

TOPICS: tuple[TopicContract, ...] = (
    TopicContract(
        suffix="purchases.v1",
        key=CUSTOMER_KEY,
        schemas=_full("Purchase", "Return"),
        role="input",
        doc="Sales and returns from the POS. One topic and one key for both, so that a return "
        "lands on the partition of its purchase and is read after it.",
    ),
    TopicContract(
        suffix="feedback.v1",
        key=CUSTOMER_KEY,
        schemas=_full("NpsResponse", "ComplaintOpened", "ComplaintResolved"),
        role="input",
        doc="NPS answers and complaints, keyed like purchases so a customer's state lives on "
        "one partition.",
    ),
    TopicContract(
        suffix="tier-changes.v1",
        key=CUSTOMER_KEY,
        schemas=_full("TierChanged", "TierDowngradeWarning"),
        role="output",
        doc="Tier upgrades and downgrades, and the warning sent ahead of a downgrade.",
    ),
    TopicContract(
        suffix="churn-risk.v1",
        key=CUSTOMER_KEY,
        schemas=_full("ChurnRiskChanged"),
        role="output",
        doc="Changes of a customer's churn-risk level, with the reasons.",
    ),
    TopicContract(
        suffix="rewards.v1",
        key=CUSTOMER_KEY,
        schemas=_full("RewardEarned", "PointsExpired"),
        role="output",
        doc="Rewards earned (punch card, service recovery) and points that lapsed.",
    ),
    TopicContract(
        suffix="dead-letter.v1",
        key="the failed record's raw key, byte for byte",
        schemas=_full("DeadLetter"),
        role="output",
        doc="Input records the worker could not process, with their raw bytes and the reason.",
    ),
)

EVENT_SCHEMAS: tuple[str, ...] = tuple(name for topic in TOPICS for name in topic.schemas)
INPUT_SCHEMAS: tuple[str, ...] = tuple(
    name for topic in TOPICS if topic.role == "input" for name in topic.schemas
)
OUTPUT_SCHEMAS: tuple[str, ...] = tuple(
    name for topic in TOPICS if topic.role == "output" for name in topic.schemas
)

_TOPIC_OF = {name: topic for topic in TOPICS for name in topic.schemas}


def topic_of(schema_name: str) -> TopicContract:
    """The topic that carries a schema (full name, or short: `Purchase`)."""
    try:
        return _TOPIC_OF[full_name(schema_name)]
    except KeyError:
        raise UnknownSchemaError(
            f"no topic carries schema {schema_name!r}; known: {', '.join(EVENT_SCHEMAS)}"
        ) from None
