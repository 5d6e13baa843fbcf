"""Watching the workers' output topics from a background thread: counts by kind and the
latest events, for the demo's live view."""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Iterable
from typing import Any

from confluent_kafka import Consumer

from streams.broker.client import reader_group
from streams.broker.security import KafkaTarget, librdkafka_config
from streams.contract import Codec


class OutputWatcher:
    def __init__(self, kafka: KafkaTarget, topics: Iterable[str], codec: Codec) -> None:
        self.counts: Counter[str] = Counter()
        self.latest: deque[tuple[str, dict[str, Any]]] = deque(maxlen=6)
        self.event_ids: set[str] = set()
        self._codec = codec
        self._consumer = Consumer(
            librdkafka_config(
                kafka,
                {
                    "group.id": reader_group("watch"),
                    "auto.offset.reset": "earliest",
                    "enable.auto.commit": False,
                },
            )
        )
        self._consumer.subscribe(list(topics))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="output-watcher", daemon=True)

    def start(self) -> OutputWatcher:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self._consumer.poll(0.2)
            if message is None or message.error():
                continue
            decoded = self._codec.decode(message.value() or b"")
            kind = decoded.schema_name.rpartition(".")[2]
            self.counts[kind] += 1
            if "event_id" in decoded.record and kind != "DeadLetter":
                self.event_ids.add(decoded.record["event_id"])
            self.latest.append((kind, decoded.record))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()
