"""When the consumer last learned a partition's end: the time its fetch request was sent.

The event-time merge lets a record go once the consumer has seen the other input's end in a
fetch made at least `merge_delay` after that record was published (`WorkerLoop._caught_up`,
`last_poll_timestamp`). aiokafka stamps a partition's fetch with the time it *processed* the
response, after the broker answered and after its event loop got round to it: on a busy
machine seconds later. The end the response carries is as old as the broker's answer, so a
record appended in between counted as seen, and the merge could let a record of the other
input go ahead of it (a CI run under load applied a customer's purchase before another
customer's record that had moved the clock past the customer's churn date: the churn
warning was never sent). The time the request was sent is a time by which every record
appended before it is in the answer, however late the answer is processed."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.structs import TopicPartition

ProcessFetch = Callable[[Any, int, Any], Awaitable[bool]]


def stamp_fetches_when_sent(fetcher: Any, clock: Callable[[], float] = time.time) -> None:
    """Makes `fetcher` (aiokafka's, of a started consumer) stamp each partition it fetched
    with the time the request went out, not the time the response was processed."""
    process: ProcessFetch = fetcher._proc_fetch_request

    async def process_stamped_when_sent(assignment: Any, node_id: int, request: Any) -> bool:
        sent_ms = int(1000 * clock())
        result = await process(assignment, node_id, request)
        for topic, partitions in request.topics:
            for partition, *_rest in partitions:
                state = assignment.state_value(TopicPartition(topic, partition))
                # never later than this request: an earlier stamp only makes the merge wait
                if state is not None and state.timestamp is not None:
                    state.timestamp = min(state.timestamp, sent_ms)
        return result

    fetcher._proc_fetch_request = process_stamped_when_sent
