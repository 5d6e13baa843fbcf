"""The parts of the broker's lifecycle that need no JVM: ids, ports, pid files, logs."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.broker.embedded import EmbeddedKafka, new_cluster_id, port_is_free
from streams.broker.logs import follow, last_lines


@settings(max_examples=200)
@given(st.integers())
def test_cluster_ids_are_kafka_uuids(_: int) -> None:
    cluster_id = new_cluster_id()
    assert len(cluster_id) == 22
    assert not cluster_id.startswith("-")
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_a_listening_port_is_not_free() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert not port_is_free(port)
    assert port_is_free(port)


def test_a_pid_file_of_another_program_does_not_count_as_our_broker(tmp_path: Path) -> None:
    broker = EmbeddedKafka(tmp_path, port=1)
    broker.pid_file.write_text(f"{os.getpid()}\n")
    assert broker.pid() is None
    assert not broker.is_running()
    # and stop must not signal that program
    assert broker.stop(timeout=1) is False


def test_a_pid_file_of_a_dead_process_counts_as_not_running(tmp_path: Path) -> None:
    broker = EmbeddedKafka(tmp_path, port=1)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    broker.pid_file.write_text(f"{dead.pid}\n")
    assert broker.pid() is None


def test_an_unformatted_data_dir_defaults_to_port_9092(tmp_path: Path) -> None:
    broker = EmbeddedKafka(tmp_path / "new")
    assert broker.bootstrap_servers == "127.0.0.1:9092"
    assert broker.record() is None


def test_last_lines_of_a_log(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("".join(f"line {n}\n" for n in range(100)))
    assert last_lines(log, 3) == ["line 97", "line 98", "line 99"]
    assert last_lines(tmp_path / "missing.log", 3) == []


def test_follow_yields_whole_new_lines_and_survives_a_rollover(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("old line\n")

    def append(text: str) -> None:
        with log.open("a") as out:
            out.write(text)

    def roll_over() -> None:
        log.rename(tmp_path / "server.log.1")
        log.write_text("after roll\n")

    script = iter(
        [
            lambda: append("first\nsecond with"),
            lambda: append(" its end\n"),
            roll_over,
        ]
    )

    def step() -> bool:
        action = next(script, None)
        if action is None:
            return False
        action()
        return True

    lines = list(follow(log, poll_seconds=0, keep_going=step))
    assert lines == ["first", "second with its end", "after roll"]
