"""The fence that stops state writes from the start of a rebalance to the new assignment."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from streams.worker.rebalance import RebalanceFence


def test_the_fence_closes_at_the_start_of_a_rebalance_and_opens_with_the_next_generation() -> None:
    app: Any = SimpleNamespace(rebalancing=False, consumer_generation_id=4)
    fence = RebalanceFence(cast(Any, app))
    assert not fence.closed()  # steady state
    app.rebalancing = True
    fence.on_rebalance_start(app)  # the listener, before anything is revoked
    assert fence.closed()  # revoking: the old generation may not write any more
    app.consumer_generation_id = 5  # the new assignment
    assert not fence.closed()  # recovering or running again: the new owner writes
    app.rebalancing = False
    assert not fence.closed()


def test_the_fence_stays_open_while_faust_rebalances_without_having_started_here() -> None:
    # `rebalancing` alone is true from the first start, before any generation: no fence
    # was set, so writes are not blocked by a generation that never started a rebalance
    app: Any = SimpleNamespace(rebalancing=True, consumer_generation_id=0)
    assert not RebalanceFence(cast(Any, app)).closed()
