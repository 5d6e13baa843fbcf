"""When each customer of a partition next needs time-driven work (a downgrade, a warning,
points expiry, a churn level change, an overdue complaint), so that the worker finds the due
customers without scanning its table. A heap per partition with lazy deletion: an entry is
live only while it matches the customer's current due time."""

from __future__ import annotations

import heapq
from collections.abc import Iterator


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
        heapq.heappush(self._heaps.setdefault(partition, []), (due_ms, customer_id))

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
