"""The naive Faust app: what a faust-streaming user writes from the docs. One agent over both
input topics, a Table with Faust's defaults (in memory, JSON values, a changelog), the core's
`apply`, outputs sent as JSON with `topic.send`. No dedupe of redelivered records, no
event-time merge, no due index, no dead letters, Faust's own commits.

    LOYALTY_BOOTSTRAP_SERVERS=... LOYALTY_TOPIC_PREFIX=... LOYALTY_APP_ID=... \\
        python -m bench.naive_faust

The inputs are the contract's Avro records (the same topics every contender reads), decoded
with our codec; everything it keeps and sends is JSON. The commit interval is the worker's
(1 s, not Faust's 2.8 s), so that both reach "committed everything" equally soon after
their last record. Runs as `faust worker` until SIGTERM."""

from __future__ import annotations

import json
import sys
from typing import Any

import faust

from streams.broker.security import faust_broker_options
from streams.broker.topics import TopicNames
from streams.contract import ContractError, Decoded, make_codec
from streams.core import INPUT_EVENTS, CustomerState, RuleViolation, apply, new_customer
from streams.core.state import OpenComplaint, PunchCardStamps, PurchaseRecord, SpendDay
from streams.program import load_program
from streams.settings import Settings


def build_app(settings: Settings) -> faust.App:
    program = load_program(settings.rules)
    codec = make_codec(settings)
    topics = TopicNames(settings.topic_prefix)
    app = faust.App(
        settings.app_id,
        **faust_broker_options(settings.kafka),
        store="memory://",
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        value_serializer="json",
        web_enabled=False,
    )
    # named as the worker's table, so that its changelog is `<app id>-customers-changelog`
    customers = app.Table("customers", default=None, partitions=settings.partitions)
    inputs = app.topic(*topics.inputs, value_serializer="raw")
    outputs = {
        "tier_changes": app.topic(topics.tier_changes),
        "churn_risk": app.topic(topics.churn_risk),
        "rewards": app.topic(topics.rewards),
    }

    @app.agent(inputs)
    async def process(stream: Any) -> None:
        async for value in stream:
            try:
                decoded = codec.decode(value)
                event = INPUT_EVENTS[decoded.schema_name](decoded.record)
            except (ContractError, KeyError):
                continue
            stored = customers.get(event.customer_id)
            state = new_customer(event.customer_id) if stored is None else state_of(stored)
            try:
                state, events_out = apply(state, event, program)
            except RuleViolation:
                continue
            customers[event.customer_id] = state
            for output in events_out:
                await outputs[output.TOPIC_ROLE].send(
                    key=event.customer_id.encode(), value=output.to_record()
                )

    return app


class JsonOutputs:
    """Reads the app's outputs back, to count them: JSON, not the contract's Avro."""

    def decode(self, data: bytes) -> Decoded:
        return Decoded("json", json.loads(data))


def state_of(stored: Any) -> CustomerState:
    """The table's value: the state as set, or its JSON lists as read back from the
    changelog after a restart."""
    if isinstance(stored, CustomerState):
        return stored
    state = CustomerState(*stored)
    return state._replace(
        spend_days=tuple(SpendDay(*day) for day in state.spend_days),
        recent_checks=tuple(state.recent_checks),
        punch_cards=tuple(PunchCardStamps(*card) for card in state.punch_cards),
        purchases=tuple(PurchaseRecord(*p[:4], tuple(p[4]), *p[5:]) for p in state.purchases),
        complaints=tuple(OpenComplaint(*complaint) for complaint in state.complaints),
        recent_ids=tuple(state.recent_ids),
    )


if __name__ == "__main__":
    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn"]
    build_app(Settings()).main()
