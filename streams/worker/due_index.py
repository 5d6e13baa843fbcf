"""When each customer of a partition next needs time-driven work (a downgrade, a warning,
points expiry, a churn level change, an overdue complaint), so that the worker finds the due
customers without scanning its table. A heap per partition with lazy deletion: an entry is
live only while it matches the customer's current due time. Stale entries leave the heap when
the clock passes them, which for a due time years ahead (a churn level change of a loyal
customer) is never in practice: so a heap that holds more than twice its live entries is
rebuilt from them, which keeps its size proportional to the customers, not to the events."""

from __future__ import annotations

import heapq
from collections.abc import Iterator

COMPACT_SLACK = 1024  # stale entries a heap may hold beyond twice its live ones


class DueIndex:
    def __init__(self) -> None:
        self._heaps: dict[int, list[tuple[int, str]]] = {}
        self._due: dict[int, dict[str, int]] = {}

    def set(self, partition: int, customer_id: str, due_ms: int | None) -> None:
        due_of = self._due.setdefault(partition, {})
        if due_ms is None:
            due_of.pop(customer_id, None)
            return
        if due_of.get(customer_id) == due_ms:
            return
        due_of[customer_id] = due_ms
        heap = self._heaps.setdefault(partition, [])
        heapq.heappush(heap, (due_ms, customer_id))
        if len(heap) > 2 * len(due_of) + COMPACT_SLACK:
            self._heaps[partition] = [(due, customer) for customer, due in due_of.items()]
            heapq.heapify(self._heaps[partition])

    def pop_due(self, partition: int, up_to_ms: int) -> Iterator[str]:
        """Customers of the partition due at or before `up_to_ms`, earliest first; each is
        removed (the caller sets its new due time after advancing it)."""
        heap = self._heaps.get(partition)
        due_of = self._due.get(partition)
        while heap and due_of is not None and heap[0][0] <= up_to_ms:
            due_ms, customer_id = heapq.heappop(heap)
            if due_of.get(customer_id) == due_ms:
                del due_of[customer_id]
                yield customer_id

    def drop(self, partition: int) -> None:
        """Forget a partition (revoked from this worker)."""
        self._heaps.pop(partition, None)
        self._due.pop(partition, None)

    def has(self, partition: int) -> bool:
        return partition in self._due

    def size(self) -> int:
        return sum(len(due_of) for due_of in self._due.values())

    def next_due(self, partition: int) -> int | None:
        heap, due_of = self._heaps.get(partition), self._due.get(partition, {})
        while heap and due_of.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)  # stale entries surface here first
        return heap[0][0] if heap else None
