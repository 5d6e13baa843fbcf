"""The event-time merge of a partition's sources and the due index."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from streams.worker.due_index import COMPACT_SLACK, DueIndex
from streams.worker.ordering import PartitionMerge, Pending, Source, merged

times = st.lists(st.integers(min_value=0, max_value=50), max_size=30)


def log(source: Source, event_times: list[int]) -> list[Pending[str]]:
    return [
        Pending(t, source, offset, f"{source.name}-{offset}")
        for offset, t in enumerate(event_times)
    ]


@given(times, times)
def test_merge_keeps_each_source_in_offset_order_and_loses_nothing(
    a: list[int], b: list[int]
) -> None:
    out = list(merged([log(Source.PURCHASES, a), log(Source.FEEDBACK, b)]))
    assert len(out) == len(a) + len(b)
    for source in Source:
        offsets = [p.offset for p in out if p.source is source]
        assert offsets == sorted(offsets)


@given(times, times)
def test_sources_in_timestamp_order_merge_into_timestamp_order(a: list[int], b: list[int]) -> None:
    out = list(merged([log(Source.PURCHASES, sorted(a)), log(Source.FEEDBACK, sorted(b))]))
    assert [p.order for p in out] == sorted(p.order for p in out)


@given(times, times, st.randoms(use_true_random=False))
def test_arrival_interleaving_does_not_change_the_order(
    a: list[int], b: list[int], rnd: random.Random
) -> None:
    # records reach the worker interleaved at random, but every source has data or is not
    # yet caught up until the end: the merge releases exactly the complete-log order
    sources = [log(Source.PURCHASES, a), log(Source.FEEDBACK, b)]
    reference = list(merged(sources))
    merge: PartitionMerge[str] = PartitionMerge()
    queues = [list(s) for s in sources]
    out: list[Pending[str]] = []
    while any(queues):
        source = rnd.choice([i for i, q in enumerate(queues) if q])
        merge.push(queues[source].pop(0))
        out += merge.release(lambda s: not queues[s])  # caught up once nothing is left
    assert out == reference


def test_merge_waits_for_a_source_that_is_not_caught_up() -> None:
    merge: PartitionMerge[str] = PartitionMerge()
    merge.push(Pending(10, Source.PURCHASES, 0, "p0"))
    assert list(merge.release(lambda source: False)) == []
    assert [p.payload for p in merge.release(lambda source: True)] == ["p0"]
    merge.push(Pending(30, Source.PURCHASES, 1, "p1"))
    merge.push(Pending(20, Source.FEEDBACK, 0, "f0"))
    merge.push(Pending(25, Source.FEEDBACK, 1, "f1"))
    assert merge.oldest_head_ms() == 20
    assert [p.payload for p in merge.release(lambda s: False)] == ["f0", "f1"]
    assert merge.buffered() == 1 and merge.oldest_head_ms() == 30


def test_merge_refuses_records_out_of_offset_order() -> None:
    merge: PartitionMerge[str] = PartitionMerge()
    merge.push(Pending(1, Source.PURCHASES, 5, "a"))
    try:
        merge.push(Pending(1, Source.PURCHASES, 5, "again"))
    except ValueError as error:
        assert "offset order" in str(error)
    else:
        raise AssertionError("a repeated offset was accepted")


def test_due_index_yields_due_customers_once_and_honours_rescheduling() -> None:
    index = DueIndex()
    index.set(0, "a", 100)
    index.set(0, "b", 50)
    index.set(1, "c", 10)
    index.set(0, "a", 300)  # rescheduled: the entry at 100 is stale
    assert list(index.pop_due(0, 200)) == ["b"]
    assert list(index.pop_due(0, 200)) == []
    assert index.next_due(0) == 300
    index.set(0, "a", None)
    assert list(index.pop_due(0, 10_000)) == []
    assert list(index.pop_due(1, 10)) == ["c"]
    index.set(1, "d", 5)
    index.drop(1)
    assert not index.has(1) and index.size() == 0


def test_a_rewind_drops_the_buffered_records_that_will_come_again() -> None:
    merge: PartitionMerge[str] = PartitionMerge()
    for offset in range(5):
        merge.push(Pending(offset, Source.FEEDBACK, offset, f"f{offset}"))
    merge.push(Pending(2, Source.PURCHASES, 7, "p7"))
    assert merge.rewind(Source.FEEDBACK, 2) == 3  # offsets 2, 3 and 4 will be read again
    merge.push(Pending(2, Source.FEEDBACK, 2, "f2 again"))  # no offset-order error now
    released = [p.payload for p in merge.release(lambda _source: True)]
    assert released == ["f0", "f1", "p7", "f2 again"]


def test_due_index_memory_follows_the_customers_not_the_reschedulings() -> None:
    """Due times that move later at every event, far ahead of the clock (a loyal customer's
    next churn change): the stale entries must not pile up, and the answers stay right."""
    index = DueIndex()
    customers = [f"c{n}" for n in range(50)]
    for step in range(1, 2001):
        for customer in customers:
            index.set(0, customer, 1_000_000 + step * 1000 + len(customer))
    assert index.size() == 50
    assert len(index._heaps[0]) <= 2 * 50 + COMPACT_SLACK
    assert index.next_due(0) == 1_000_000 + 2000 * 1000 + 2
    due = list(index.pop_due(0, 1_000_000 + 2000 * 1000 + 2))
    assert sorted(due) == sorted(c for c in customers if len(c) == 2)
