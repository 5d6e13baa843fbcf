"""A fetch is stamped with the time its request was sent: the partition's end it brings is
at least that recent, however late the answer is processed (see `fetch_time`)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.structs import TopicPartition
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from streams.worker.fetch_time import stamp_fetches_when_sent
from streams.worker.kafka_transport import BrokerEndOffsetsConsumerThread

FETCHED = TopicPartition("purchases", 1)
NOT_IN_THIS_ANSWER = TopicPartition("purchases", 2)


class _Assignment:
    def __init__(self) -> None:
        self.states = {
            FETCHED: SimpleNamespace(timestamp=None),
            NOT_IN_THIS_ANSWER: SimpleNamespace(timestamp=900),  # from an earlier fetch
        }

    def state_value(self, tp: TopicPartition) -> Any:
        return self.states.get(tp)


class _Fetcher:
    """aiokafka's: it stamps what it processed with the time it processed it."""

    def __init__(self, now: list[float]) -> None:
        self.now = now

    async def _proc_fetch_request(
        self, assignment: _Assignment, node_id: int, request: Any
    ) -> bool:
        self.now[0] += 3.0  # the broker's answer, processed three seconds later
        assignment.states[FETCHED].timestamp = int(self.now[0] * 1000)
        return True


def test_a_partition_fetched_is_stamped_when_the_request_went_out() -> None:
    now = [1.0]
    fetcher = _Fetcher(now)
    stamp_fetches_when_sent(fetcher, clock=lambda: now[0])
    assignment = _Assignment()
    request = SimpleNamespace(topics=[("purchases", [(1, 40, 1 << 20), (2, 7, 1 << 20)])])
    assert asyncio.run(fetcher._proc_fetch_request(assignment, 0, request)) is True
    assert assignment.states[FETCHED].timestamp == 1000  # not 4000
    assert assignment.states[NOT_IN_THIS_ANSWER].timestamp == 900  # earlier: left as it was


def test_the_worker_s_consumer_stamps_its_fetches_so(monkeypatch: pytest.MonkeyPatch) -> None:
    fetcher = _Fetcher([0.0])
    aiokafka_s = fetcher._proc_fetch_request

    async def started(thread: Any) -> None:
        thread._consumer = SimpleNamespace(_fetcher=fetcher)

    monkeypatch.setattr(AIOKafkaConsumerThread, "on_start", started)
    thread: Any = object.__new__(BrokerEndOffsetsConsumerThread)
    asyncio.run(thread.on_start())
    assert fetcher._proc_fetch_request != aiokafka_s
