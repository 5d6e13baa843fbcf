"""The Faust app: topics, the customer table and one agent that hands every record to the
WorkerLoop. The topology fits on one screen; what happens to a record lives in `loop` and
`processor`.

Choices made around faust-streaming's known problems with offsets and recovery:
- one agent, concurrency 1, over both input topics and the tick topic: no concurrent
  acks (lost offsets with concurrency > 1), one writer per customer, no locks;
- acks are manual and in offset order per partition (no gaps for its commit logic);
- Faust does not wait for unacked records at a rebalance (`stream_wait_empty=False`): the
  merge holds records back, and the next owner reads unacked records again anyway;
- correctness does not rest on Faust's commits: the table stores, per customer, the next
  offset of each source not yet applied, so whatever is redelivered after a crash or a
  rebalance is applied once (see `envelope` and `loop`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

import faust
import structlog
from confluent_kafka import KafkaException
from faust.exceptions import ConsumerNotStarted
from faust.types import TP

from streams.broker.security import faust_broker_options
from streams.broker.topics import INPUT_TOPIC_CONFIG, TopicNames, ensure_topics, topic_configs
from streams.contract import make_codec
from streams.program import load_program
from streams.settings import Settings
from streams.worker import kafka_transport, memory_store, rocksdb_memory, state_dir
from streams.worker.customer_table import CustomerTable
from streams.worker.envelope import CUSTOMER_TABLE
from streams.worker.flow_control import install as keep_delivered_on_resume
from streams.worker.http_guard import api_guard
from streams.worker.loop import PartitionLostError, WorkerLoop
from streams.worker.metrics import WorkerFacts, WorkerMetrics
from streams.worker.ordering import Source
from streams.worker.processor import InputRecord, Outbound, Processor
from streams.worker.rebalance import RebalanceFence
from streams.worker.web import recovered, register_views

log = structlog.get_logger(__name__)


PRODUCER_LINGER_S = 0.005


def ticks_topic_name(settings: Settings) -> str:
    return f"{settings.app_id}-ticks"


def prepare_topics(settings: Settings) -> None:
    """Our topics and the tick topic exist with the configured partition count (the
    changelog is Faust's to create)."""
    topics = TopicNames(settings.topic_prefix)
    ensure_topics(
        settings.kafka,
        [*topics.all, ticks_topic_name(settings)],
        settings.partitions,
        settings.replication_factor,
        configs=topics.configs,
    )
    # topics made before the inputs took the broker's timestamps, or by other tooling
    try:
        existing = topic_configs(settings.kafka, topics.inputs)
    except (KafkaException, TimeoutError) as error:  # no DescribeConfigs (README's ACLs), slow
        log.info("input_topic_config_unknown", error=repr(error))
        return
    for name, config in existing.items():
        for key, wanted in INPUT_TOPIC_CONFIG.items():
            if config.get(key) != wanted:
                log.warning("input_topic_config", topic=name, key=key, value=config.get(key),
                            wanted=wanted, why="records a producer held back (a broker "
                            "outage) can be applied out of the order a replay gives")  # fmt: skip


def api_token(settings: Settings) -> str | None:
    return settings.api_token.get_secret_value() if settings.api_token else None


def local_store_dir(settings: Settings) -> Path:
    return Path(settings.data_dir) / "faust"


def store_url(settings: Settings) -> str:
    """RocksDB, except under exactly_once: there the table lives in memory and each partition
    is rebuilt from the changelog as read_committed sees it whenever it is assigned (our
    memory store forgets a partition when it moves; Faust's kept it). A local store
    would survive a crash holding writes of transactions that were aborted, marking records
    as applied whose outputs were never committed (the crash test lost hundreds of outputs
    that way), and Faust's RocksDB recovery under transactions stops with a ConsistencyError
    (persisted offset above the last stable offset) after a rebalance. RocksDB is Faust's,
    except that a write the disk refuses stops the worker (see `state_dir`)."""
    if settings.processing_guarantee == "exactly_once" or settings.store == "memory":
        return memory_store.register()
    return state_dir.register()


def store_options(settings: Settings) -> dict[str, int]:
    """RocksDB's memory: the size of each write buffer, and the budget every table partition
    of the worker shares (see `Settings.store_memory_mb` and `rocksdb_memory`)."""
    return {
        "write_buffer_size": settings.store_write_buffer_mb * 2**20,
        "max_write_buffer_number": 3,
        "memory_budget_size": settings.store_memory_mb * 2**20,
        "write_buffer_budget_size": round(settings.store_write_buffers_budget_mb * 2**20),
    }


def warn_ignored_settings(settings: Settings) -> None:
    if settings.store_block_cache_mb is not None:
        log.warning("setting_ignored", setting="LOYALTY_STORE_BLOCK_CACHE_MB",
                    instead="LOYALTY_STORE_MEMORY_MB", why="RocksDB's block cache is one per "
                    "worker now, no longer one per table partition")  # fmt: skip


def build_app(settings: Settings) -> tuple[faust.App, WorkerLoop]:
    warn_ignored_settings(settings)
    program = load_program(settings.rules)
    codec = make_codec(settings)
    codec.prepare()
    topics = TopicNames(settings.topic_prefix)
    ticks = ticks_topic_name(settings)
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)

    app = faust.App(
        settings.app_id,
        # broker and broker_credentials: the connection every client of ours makes
        # through our transport (see `kafka_transport`)
        **faust_broker_options(settings.kafka, kafka_transport.register()),
        store=store_url(settings),
        datadir=str(local_store_dir(settings)),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        processing_guarantee=settings.processing_guarantee,
        table_standby_replicas=settings.standby_replicas,
        consumer_group_instance_id=settings.group_instance_id,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # Faust's default linger of 0 has aiokafka send a produce request as soon as any batch
        # has a record: a flush of a thousand outputs and state writes went out as many small
        # requests. 5 ms gathers them: 35 % more events/s, 17 % less CPU per event (measured
        # side by side, bench.worker_throughput, 40k events; 2 to 20 ms all alike), for at
        # most 5 ms more per flush.
        producer_linger=PRODUCER_LINGER_S,
        # a SIGKILLed worker's partitions move on after this, not after Faust's 60 s default
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        broker_commit_interval=1.0,
        # Faust would wait, before giving partitions up, for every record handed to the agent
        # to be acked; records held by the event-time merge never would be: deadlock (seen in
        # the crash test). Unacked records are simply read again by the next owner.
        stream_wait_empty=False,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        # the URL other workers forward customer requests to
        web_host=settings.web_host,
        web_in_thread=False,
        # read-only, the bearer token, JSON errors without tracebacks: see http_guard
        web_application_options={"middlewares": [api_guard(api_token(settings))]},
        key_serializer="raw",
        value_serializer="raw",
    )
    # before any stream buffer registers with Faust's own (see `flow_control`)
    flow_control = keep_delivered_on_resume(app)
    table = CustomerTable(
        app,
        name=CUSTOMER_TABLE,
        beacon=app.tables.beacon,
        partitions=settings.partitions,
        key_type=bytes,
        value_type=bytes,
        options=store_options(settings),
    )
    table.source_topic = topics.purchases
    app.tables.add(table)
    inputs = app.topic(topics.purchases, topics.feedback, ticks, key_serializer="raw",
                       value_serializer="raw")  # fmt: skip
    source_of = {topics.purchases: Source.PURCHASES, topics.feedback: Source.FEEDBACK}
    topic_of_source = {source: name for name, source in source_of.items()}

    exactly_once = settings.processing_guarantee == "exactly_once"

    async def send(outbound: list[Outbound], partition: int) -> None:
        """Produces and waits for Kafka's acknowledgement. Under exactly_once, into the open
        transaction of the input partition the records come from: Faust's own sends pick a
        transaction by the destination topic's group, which only topics it consumes have, and
        `app.producer` alone sends outside any transaction (outputs visible at once, however
        the transaction of the state change and the offsets ends)."""
        transaction = None
        if exactly_once:
            group = app.assignor.group_for_topic(topics.purchases)
            transaction = f"{app.conf.id}-{group}-{partition}"
        try:
            pending = [
                await app.producer.send(
                    item.topic,
                    item.key,
                    item.value,
                    partition=None,
                    timestamp=None,
                    headers=None,
                    transactional_id=transaction,
                )
                for item in outbound
            ]
            await asyncio.gather(*pending)
        except kafka_transport.TRANSACTION_GONE as error:
            if transaction is None:
                raise
            # the partition's transaction was fenced by its next owner (or Faust dropped its
            # producer after that): the partition has moved, the next owner redoes the record
            raise PartitionLostError(f"transaction {transaction}: {error!r}") from error

    def caught_up(source: Source, partition: int, last_seen: int | None, as_of_ms: int) -> bool:
        """The consumer's view: the highwater from its latest fetch response, if that response
        came at `as_of_ms` or later, against the last record we saw, or (none seen since
        assignment) the committed offset it started from. Without such a fetch, no."""
        tp = TP(topic_of_source[source], partition)
        try:
            # aiokafka's time of the fetch response the highwater came with (Faust does not
            # pass it on; read-only use of its consumer thread)
            client = app.consumer._thread._ensure_consumer()  # type: ignore[attr-defined]
            fetched_at_ms = client.last_poll_timestamp(tp)
            highwater = app.consumer.highwater(tp)
        except Exception:  # not assigned (any more), or never fetched: unknown
            return False
        if highwater is None or fetched_at_ms is None or fetched_at_ms < as_of_ms:
            return False
        if last_seen is not None:
            return bool(last_seen + 1 >= highwater)
        # after the seek to the committed offset Faust keeps it here (private, read-only use)
        start = app.consumer._read_offset.get(tp)  # type: ignore[attr-defined]
        return bool(highwater == 0 or (start is not None and start >= highwater))

    def assigned() -> AbstractSet[tuple[str, int]]:
        """The consumer's assignment, as aiokafka holds it (read-only): its TopicPartitions
        equal Faust's TPs, both (topic, partition) tuples. Faust's `assignment()` builds a
        new set of new TPs on every call: asked once a record, that was 4 % of the worker's
        time in a profile."""
        try:
            client = app.consumer._thread._ensure_consumer()  # type: ignore[attr-defined]
            return client.assignment()  # type: ignore[no-any-return]
        except ConsumerNotStarted:
            return frozenset()

    fence = RebalanceFence(app)
    app.sensors.add(fence)

    def owns(partition: int) -> bool:
        """Whether a state write for the partition may reach the changelog now (see
        `rebalance` for why the assignment alone cannot say). Not fenced under exactly_once:
        there a late write lands in the partition's open transaction, aborted if the
        partition moves; refusing it after its outputs went into that transaction would
        apply the record again, outputs and all, if the partition stays."""
        if not exactly_once and fence.closed():
            return False
        return TP(topics.purchases, partition) in assigned()

    metrics_observer: list[WorkerMetrics] = []  # set once the metrics exist (they read the loop)

    def observe_latency(processing_s: float, event_lag_s: float | None) -> None:
        for metrics in metrics_observer:
            metrics.observe(processing_s, event_lag_s)

    loop = WorkerLoop(
        Processor(
            program,
            codec,
            topics,
            settings.partitions,
            max_event_time_ahead_ms=settings.max_event_time_ahead_ms,
        ),
        table,
        send,
        caught_up,
        grace_ms=int(settings.late_grace_seconds * 1000),
        live_clock=settings.clock == "live",
        merge_delay_ms=int(settings.merge_delay_seconds * 1000),
        owns=owns,
        observe_latency=observe_latency,
        hand_over=lambda: table.hand_over(owns),
    )
    metrics = WorkerMetrics(loop, worker_facts(app, loop, source_of))
    metrics_observer.append(metrics)

    @app.agent(inputs, concurrency=1)
    async def process(stream: Any) -> None:
        transactions = app.consumer.transactions
        if isinstance(transactions, kafka_transport.GatedTransactionManager):
            transactions.gate = loop.commit_gate  # before the first record is sent anywhere
        flow_control.keep(stream.channel.queue)  # what Faust delivered, the agent processes
        try:
            await _process(stream)
        except Exception as error:
            log.exception("agent_failed", error=repr(error))
            # Faust would restart the agent and carry on, but the records the loop held are
            # gone from its stream until the next rebalance: crash the worker instead, so it
            # restarts from the committed offsets (the offset marks make that harmless)
            await app.crash(error)
            raise

    async def _process(stream: Any) -> None:
        # records Faust has fetched and not yet handed to the agent: while there are some,
        # what the loop applies waits for a later flush (a batch: one wait for Kafka for many
        # records, not one each); once there are none, it waits for nothing more
        ready = stream.channel.queue
        async for event in stream.noack().events():
            await _handle(event)
            if ready.empty():
                await loop.flush()

    async def _handle(event: Any) -> None:
        message = event.message
        if message.tp not in assigned():
            return  # fetched before a rebalance took the partition away: not ours now
        if message.topic == ticks:
            await loop.on_tick(message.partition, int.from_bytes(message.value, "big"))
            event.ack()
            return
        record = InputRecord(
            source_of[message.topic],
            message.topic,
            message.partition,
            message.offset,
            round(message.timestamp * 1000),  # Faust's seconds back to Kafka's exact ms
            message.key,
            message.value,
        )
        await loop.on_record(record, event.ack, more_coming=True)

    tick_topic = app.topic(ticks, key_serializer="raw", value_serializer="raw")

    @app.timer(settings.tick_seconds)  # type: ignore[untyped-decorator]
    async def tick() -> None:
        # through the log, so that the agent (the table's only writer) does the work
        now_ms = int(time.time() * 1000).to_bytes(8, "big")
        for tp in app.consumer.assignment():
            if tp.topic == topics.purchases:
                await tick_topic.send(value=now_ms, partition=tp.partition)

    async def on_revoked(sender: Any, revoked: set[TP], **_: Any) -> None:
        loop.revoke({tp.partition for tp in revoked if tp.topic == topics.purchases})

    async def on_assigned(sender: Any, assigned: set[TP], **_: Any) -> None:
        partitions = {tp.partition for tp in assigned if tp.topic == topics.purchases}
        loop.assign(partitions)
        log.info("partitions_assigned", partitions=sorted(partitions),
                 rebalance=loop.counters.assignments)  # fmt: skip

    app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]  # mode's stubs
    app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]

    register_views(app, table, loop, program, settings, metrics)

    return app, loop


def worker_facts(app: faust.App, loop: WorkerLoop, source_of: dict[str, Source]) -> WorkerFacts:
    """What the metrics read from Faust and the consumer at scrape time (read-only use of a
    few private fields, named where used)."""

    def input_partitions() -> list[TP]:
        try:
            assignment = app.consumer.assignment()
        except ConsumerNotStarted:  # a scrape before the consumer runs: nothing owned yet
            return []
        return [tp for tp in assignment if tp.topic in source_of]

    def lag() -> dict[tuple[str, int], int]:
        behind = {}
        for tp in input_partitions():
            try:
                highwater = app.consumer.highwater(tp)
            except Exception:  # revoked meanwhile, or not fetched yet: unknown, not zero
                continue
            # the next offset the consumer will hand out (Faust's read offset is the last one)
            read = app.consumer._read_offset.get(tp)  # type: ignore[attr-defined]
            position = 0 if read is None else read + 1
            if highwater is not None:
                behind[source_of[tp.topic].name.lower(), tp.partition] = max(
                    0, highwater - position
                )
        return behind

    recovery = app.tables.recovery  # type: ignore[attr-defined]

    def recovery_duration_s() -> float | None:
        started = getattr(recovery, "_recovery_started_at", None)
        ended = getattr(recovery, "_recovery_ended_at", None)
        return None if started is None or ended is None or ended < started else ended - started

    def partitions_assigned() -> int:
        return sum(1 for tp in input_partitions() if source_of[tp.topic] is Source.PURCHASES)

    return WorkerFacts(
        lag=lag,
        partitions_assigned=partitions_assigned,
        table_customers=lambda: loop.tally().customers,
        recovery_in_progress=lambda: bool(recovery.in_recovery),
        recovery_remaining=lambda: (
            int(recovery.active_remaining_total()) if recovery.in_recovery else 0
        ),
        recovery_duration_s=recovery_duration_s,
        ready=lambda: recovered(app) and partitions_assigned() > 0,
        store_memory=rocksdb_memory.usage,
    )
