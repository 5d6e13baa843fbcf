"""What can go wrong with the embedded broker and the topics, as exceptions the CLI turns
into one-line messages. Each message names the thing at fault and what to do about it."""

from __future__ import annotations


class BrokerError(Exception):
    """Base of every error of the broker room; its message is fit to show a user."""


class KafkaFetchError(BrokerError):
    """The Kafka jars could not be fetched (no Maven, no Java, or Maven failed)."""


class PortInUseError(BrokerError):
    """A port the broker needs is taken by another process."""

    def __init__(self, port: int, role: str, flag: str) -> None:
        self.port = port
        super().__init__(
            f"{role} port {port} on 127.0.0.1 is already in use (another broker? see "
            f"`loyalty kafka status`); choose a free one with {flag}"
        )


class BrokerAlreadyRunningError(BrokerError):
    """`start` on a data directory whose broker is alive: harmless, so callers may shrug."""

    def __init__(self, pid: int, bootstrap_servers: str) -> None:
        self.pid = pid
        self.bootstrap_servers = bootstrap_servers
        super().__init__(f"a broker is already running (pid {pid}) at {bootstrap_servers}")


class BrokerStartError(BrokerError):
    """The broker process died or did not answer in time; the message carries its log tail."""


class BrokerUnreachableError(BrokerError):
    """No broker answers at the given bootstrap servers."""


class TopicPartitionsMismatchError(BrokerError):
    """Existing topics have another partition count than wanted; co-partitioning by customer id
    needs one count for all, and Kafka cannot shrink a topic, so we refuse to go on."""

    def __init__(self, mismatches: dict[str, int], wanted: int) -> None:
        self.mismatches = dict(mismatches)
        self.wanted = wanted
        listed = "; ".join(
            f"topic {name} has {count} partitions, wanted {wanted}"
            for name, count in sorted(mismatches.items())
        )
        super().__init__(
            f"{listed}. Delete and recreate the topic(s), or run with --partitions "
            f"matching the existing ones"
        )
