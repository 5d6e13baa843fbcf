"""When a state write may still reach the changelog during a rebalance.

Faust revokes partitions by flushing the producer and then handing them over; the next owner
recovers the table from the changelog. A write made after that flush reaches the changelog
after the next owner began to recover, and, being the latest for its key, wins over the next
owner's own writes at the following recovery or compaction: the state goes back in time and
the records in between are never applied again (the join/leave test lost and changed outputs
that way). So from the start of a rebalance until the new assignment, the worker writes
nothing. Neither the consumer's assignment (it still lists the old partitions then) nor
`app.rebalancing` (it stays true through recovery, while records already flow again) marks
that window; the generation does: a rebalance starts in the old generation, the new
assignment comes with the next one."""

from __future__ import annotations

from typing import Any

import faust


class RebalanceFence(faust.Sensor):
    """Told by Faust (as a sensor, synchronously, from the rebalance listener) that a
    rebalance starts, before anything is revoked."""

    def __init__(self, app: faust.App) -> None:
        super().__init__()
        self.app = app
        self._fenced_generation: int | None = None

    def on_rebalance_start(self, app: Any) -> dict[str, Any]:
        self._fenced_generation = app.consumer_generation_id
        return {}

    def closed(self) -> bool:
        """True while a rebalance that started in the current generation is under way."""
        return bool(
            self.app.rebalancing and self.app.consumer_generation_id == self._fenced_generation
        )
