"""Fixes to how Faust's consumer works out the offsets it commits, found by the full-disk
takeover test (faust-streaming 0.15: `faust.transport.consumer.Consumer`, which the aiokafka
driver's consumer extends).

Faust commits, per partition, the end of the run of consecutive offsets acknowledged since
its last commit. Offsets that never reach the stream (transaction markers, records compacted
away) are "gaps": when the fetcher sees a record more than one past the previous one, it marks
everything in between as done. Three things go wrong with that:

1. The gap includes the record at hand (`_add_gap(tp, read + 1, offset)`, an inclusive
   interval), which has not been processed yet: a commit can pass it before it is, and a crash
   then loses it.
2. At the end of a rebalance Faust resumes the partitions and only then seeks them to the
   committed offsets, with its fetcher already running: records fetched meanwhile reach the
   stream, the seek puts the read offset back to the committed one, and the next record of the
   batch in flight looks like a jump past a gap of hundreds of records that were delivered and
   are not processed yet (the takeover test saw a gap of 605 on a fresh worker). Those would
   be committed before they are processed.
3. Gap offsets are added to the acknowledged ones without looking: an offset both acked and in
   a gap is there twice, and Faust's run of consecutive offsets ends at the repeat. The commit
   then advances by one or two offsets per commit interval (faust-streaming/faust#625 saw the
   same): the takeover test's partition stayed 771 records behind for three minutes.

So: a gap ends before the record at hand; a gap never covers offsets delivered before the
latest seek (those come or came through the stream and are acknowledged as they are
processed); and the acknowledged offsets are a set."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.transport.drivers.aiokafka import Consumer
from faust.types import TP


class SafeCommitOffsets(Consumer):
    """Faust's aiokafka consumer, with the fixes above (the worker's: see `kafka_transport`)."""

    @property
    def _delivered_before_seek(self) -> dict[TP, int]:
        """Per partition, the highest offset the fetcher had delivered when a seek set the
        read offsets back (forgotten when the partition is revoked, as Faust forgets its)."""
        try:
            return self.__dict__["_delivered_before_seek_"]  # type: ignore[no-any-return]
        except KeyError:
            return self.__dict__.setdefault("_delivered_before_seek_", {})  # type: ignore[no-any-return]

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = await super().seek_to_committed()
        # Faust's `perform_seek` now sets the read offsets to these, with no await in between:
        # what they were is what the fetcher has delivered (the batch it iterates goes on)
        delivered = self._delivered_before_seek
        for tp, offset in list(self._read_offset.items()):
            if offset is not None:
                delivered[tp] = max(offset, delivered.get(tp, offset))
        return committed

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        self.forget_delivered(revoked)
        await super().on_partitions_revoked(revoked)

    def forget_delivered(self, revoked: set[TP]) -> None:
        """Faust forgets a revoked partition's gaps and read offset: so do we, or a gap of its
        next assignment (a transaction marker below what we had read) would be refused."""
        for tp in revoked:
            self._delivered_before_seek.pop(tp, None)

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        delivered = self._delivered_before_seek.get(tp)
        if delivered is not None:
            offset_from = max(offset_from, delivered + 1)
        # `offset_to` is the record at hand: processed and acked like any other
        await super()._add_gap(tp, offset_from, offset_to - 1)

    def _new_offset(self, tp: TP) -> int | None:
        acked: list[int] = self._acked[tp]
        gaps: Any = self._gap[tp]
        filled: set[int] = set()
        if acked and gaps:
            top = max(acked)
            for interval in gaps.overlap(0, top + 1):
                filled.update(range(interval.begin, interval.end))
            if filled:
                gaps.chop(0, max(top, *filled) + 1)
        if filled or len(set(acked)) != len(acked):
            acked[:] = sorted(set(acked) | filled)
        return super()._new_offset(tp)
