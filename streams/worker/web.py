"""The worker's HTTP read side (Faust's aiohttp web server): health, readiness, one customer,
pages of the customers this worker owns, and statistics over them. What each answer holds is
decided in `views`, without Faust; this module finds the data and the owner.

Any worker answers for any customer: the customer's partition is the murmur2 of its id (as
for every topic of ours); a worker that does not own that partition forwards the request to
the one that does, found in the group's assignment (Faust's changelog distribution, which
names each worker by its canonical URL), and relays the answer. A forwarded request carries
a header, and a worker never forwards one again: while a rebalance moves partitions the
answer is a 503 to retry, not a loop. Errors are JSON (`{"error": ..., "status": ...}`);
nothing else leaves a worker, no stack trace included."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import faust
from faust.types import TP

from streams.broker.topics import TopicNames
from streams.core import Program
from streams.core.events import from_ms
from streams.settings import Settings
from streams.worker.http_guard import bearer_token
from streams.worker.loop import WorkerLoop
from streams.worker.metrics import CONTENT_TYPE, WorkerMetrics
from streams.worker.processor import expected_partition
from streams.worker.views import (
    QueryError,
    as_of_query,
    customer_id_path,
    customer_response,
    customer_stats,
    customers_page,
    last_event_moment,
    page_limit,
)

log = logging.getLogger(__name__)

ROUTED_HEADER = "X-Loyalty-Routed-By"
FORWARD_TIMEOUT_S = 10.0

Handler = Callable[..., Awaitable[Any]]


def partition_clock_ms(loop: WorkerLoop, partition: int) -> int | None:
    """The latest event time applied on a partition (0 or None: nothing since assignment)."""
    # the loop keeps it privately; read-only use until it offers an accessor
    return loop.clock_ms(partition)


def recovered(app: faust.App) -> bool:
    """The table holds every partition assigned: Faust sets `completed` after the first
    recovery and never clears it, but keeps `rebalancing` true from the start of every
    rebalance to the end of its recovery."""
    completed = app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]
    return bool(completed and not app.rebalancing)


def register_views(
    app: faust.App,
    table: Any,
    loop: WorkerLoop,
    program: Program,
    settings: Settings,
    metrics: WorkerMetrics,
) -> None:
    topics = TopicNames.from_settings(settings)
    live = settings.clock == "live"

    def owned_partitions() -> set[int]:
        return {tp.partition for tp in app.consumer.assignment() if tp.topic == topics.purchases}

    def default_moment(partitions: set[int]) -> datetime | None:
        clocks = [ms for p in partitions if (ms := partition_clock_ms(loop, p))]
        clock = from_ms(max(clocks)) if clocks else None
        if live:
            now = datetime.now(UTC)
            return max(clock, now) if clock else now
        return clock

    def json_errors(handler: Handler) -> Handler:
        """Errors as JSON with a message: QueryError as it says, anything else a 500 (the
        traceback goes to the worker's log, never to the client)."""

        async def guarded(web: Any, request: Any, **match: Any) -> Any:
            try:
                return await handler(web, request, **match)
            except QueryError as error:
                return web.json(error.body(), status=error.status)
            except Exception as error:
                # the route, not the path: a path holds a customer id
                log.exception("read API: %s %s failed", request.method, handler.__name__)
                return web.json(
                    {"error": f"internal error: {type(error).__name__}", "status": 500},
                    status=500,
                )

        guarded.__name__ = handler.__name__
        guarded.__doc__ = handler.__doc__
        return guarded

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "alive"})

    @app.page("/metrics")
    async def prometheus_metrics(web: Any, request: Any) -> Any:
        """Prometheus' text format (docs/metrics.md): this worker's partitions only."""
        # aiohttp takes no charset in content_type: the whole header, then
        return web.bytes(metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        ready = recovered(app)
        body = {"ready": ready, "assigned": sorted(str(tp) for tp in app.consumer.assignment())}
        return web.json(body, status=200 if ready else 503)

    async def forward(web: Any, request: Any, partition: int) -> Any:
        """The request answered by the owner of `partition`, or a JSON 503/502 saying why
        not."""
        if request.headers.get(ROUTED_HEADER):
            raise QueryError(
                503,
                f"partition {partition} is not owned here any more (the group is "
                f"rebalancing?); retry",
            )
        owner = owner_url(partition)
        if owner is None or owner.rstrip("/") == str(app.conf.canonical_url).rstrip("/"):
            raise QueryError(503, f"partition {partition} has no owner right now; retry")
        url = owner.rstrip("/") + str(request.rel_url)
        headers = {ROUTED_HEADER: str(app.conf.canonical_url)}
        if settings.api_token is not None:  # the owner asks the token of us as of anyone
            headers["Authorization"] = bearer_token(settings.api_token.get_secret_value())
        try:
            async with app.http_client.get(
                url,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S),
            ) as response:
                body = await response.read()
                return web.bytes(body, content_type="application/json", status=response.status)
        except (aiohttp.ClientError, TimeoutError) as error:
            raise QueryError(
                502, f"the owner of partition {partition} at {owner} did not answer: {error}"
            ) from None

    def owner_url(partition: int) -> str | None:
        changelog = table.changelog_topic.get_topic_name()
        for url, assigned in app.router.table_metadata(table.name).items():
            if partition in assigned.get(changelog, ()):
                return str(url)
        return None

    @app.page("/customers/{customer_id:.+}")
    @json_errors
    async def customer(web: Any, request: Any, customer_id: str) -> Any:
        """One customer, answered by the worker that owns it."""
        as_of = as_of_query(request.query.get("as_of"))
        key = customer_id_path(customer_id).encode()
        partition = expected_partition(key, settings.partitions)
        if TP(topics.purchases, partition) not in app.consumer.assignment():
            return await forward(web, request, partition)
        if not recovered(app):
            raise QueryError(503, "this worker is recovering its state; retry")
        body = customer_response(
            customer_id,
            table.get(key),
            program,
            as_of=as_of,
            clock_ms=partition_clock_ms(loop, partition),
            live_clock=live,
        )
        return web.json({**body, "served_by": str(app.conf.canonical_url)})

    @app.page("/customers")
    @json_errors
    async def customers(web: Any, request: Any) -> Any:
        """The customers this worker owns, a page at a time."""
        limit = page_limit(request.query.get("limit"))
        cursor = request.query.get("cursor")
        partitions = owned_partitions()
        if not recovered(app):
            raise QueryError(503, "this worker is recovering its state; retry")
        as_of = as_of_query(request.query.get("as_of")) or moment_for(partitions)
        # a snapshot of the bytes here, the decoding and advancing in a thread: the agent
        # shares this event loop, and 20,000 customers take a second or two to describe
        snapshot = list(table.items())
        body = await asyncio.to_thread(
            customers_page, snapshot, partitions, program, cursor=cursor, limit=limit, as_of=as_of
        )
        return web.json({**body, "served_by": str(app.conf.canonical_url)})

    @app.page("/stats")
    @json_errors
    async def stats(web: Any, request: Any) -> Any:
        """Figures over the customers this worker owns (a scan of its local table)."""
        partitions = owned_partitions()
        if not recovered(app):
            raise QueryError(503, "this worker is recovering its state; retry")
        as_of = as_of_query(request.query.get("as_of")) or moment_for(partitions)
        snapshot = list(table.values())  # as for pages: describe them off the event loop
        body = await asyncio.to_thread(customer_stats, snapshot, partitions, program, as_of)
        return web.json({**body, "served_by": str(app.conf.canonical_url)})

    def moment_for(partitions: set[int]) -> datetime:
        """Where no as_of is given for many customers: the latest partition clock (now, in
        live mode); an event-clock worker that has read nothing since it started takes the
        latest event among its customers."""
        moment = default_moment(partitions)
        if moment is not None:
            return moment
        from streams.worker.envelope import StoredCustomer

        latest = None
        for value in table.values():
            stored = StoredCustomer.from_bytes(value)
            if stored.partition in partitions:
                own = last_event_moment(stored.state)
                if own is not None and (latest is None or own > latest):
                    latest = own
        return latest or datetime.now(UTC)
