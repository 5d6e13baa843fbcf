"""Records Faust has delivered to the agent's stream are not thrown away when recovery ends.

At the end of a rebalance Faust's table recovery resumes the input partitions, seeks them to
the committed offsets, and then resumes the flow, which clears every stream buffer. But its
fetcher was running through the seek (it reads the changelogs during recovery): records of
the new assignment reach the agent's buffer while the seek is under way, and the clear drops
them although Faust counts them as read. They are not read again (a partition with no
committed offset is not sought at all; otherwise the batch the fetcher was iterating moves the
read offset past the sought one, and Faust skips the records below it), so they are never
processed and never acked: the partition's commit stops in front of them, or, when the next
record is acked, Faust's commit passes over the missing one (its head-of-list test lets one
offset go), and that record is lost. The full-disk takeover test saw both: a fresh worker lost
a ComplaintResolved that way, and another stalled 19 records before the end of four inputs.
This is faust-streaming/faust#596 (open).

So the agent's buffer is left alone when the flow resumes. What is in it then was fetched in
the new assignment and is processed as usual; when the seek makes Faust deliver some of it a
second time, the worker loop recognises the redelivery (`WorkerLoop.on_record`). Explicit
clears (when partitions are revoked, when the worker stops) still empty it: what is dropped
there is read again after the next assignment's seek, and leaving it would let Faust's
pure-Python stream path ack records it skips for their old generation."""

from __future__ import annotations

import asyncio
from typing import Any
from weakref import WeakSet

import faust
from mode.utils.queues import FlowControlEvent


class KeepDeliveredOnResume(FlowControlEvent):
    """Faust's flow control, except that resuming leaves the `kept` buffers as they are."""

    def __init__(self, *, loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(loop=loop)
        self.kept: WeakSet[Any] = WeakSet()
        self._resuming = False

    def keep(self, queue: Any) -> None:
        self.kept.add(queue)

    def resume(self) -> None:
        self._resuming = True
        try:
            super().resume()  # which clears
        finally:
            self._resuming = False

    def clear(self) -> None:
        for queue in list(self._queues):
            if not (self._resuming and queue in self.kept):
                queue.clear()


def install(app: faust.App) -> KeepDeliveredOnResume:
    """Gives `app` this flow control; before any stream buffer exists (each registers with the
    flow control it finds when it is made)."""
    flow_control = KeepDeliveredOnResume(loop=app.loop)
    app.flow_control = flow_control  # Faust's is a cached property: this takes its place
    return flow_control
