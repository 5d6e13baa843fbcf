"""The worker's HTTP read side (Faust's aiohttp web server): health, readiness and, per
customer and in pages, the state this worker owns."""

from __future__ import annotations

from typing import Any

import faust

from streams.core import Program
from streams.settings import Settings
from streams.worker.loop import WorkerLoop


def register_views(
    app: faust.App, table: Any, loop: WorkerLoop, program: Program, settings: Settings
) -> None:
    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "alive"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        recovery = app.tables.recovery  # type: ignore[attr-defined]
        ready = not app.rebalancing and recovery.completed.is_set()
        body = {"ready": ready, "assigned": sorted(str(tp) for tp in app.consumer.assignment())}
        return web.json(body, status=200 if ready else 503)
