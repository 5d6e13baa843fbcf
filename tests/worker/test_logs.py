"""The worker's logs: JSON lines for machines, the same fields on every dead letter, and no
customer id in clear."""

from __future__ import annotations

import io
import json
import logging
import logging.config

import structlog
from structlog.testing import capture_logs

from streams.contract import Codec
from streams.worker.logs import configure_structlog, customer_ref, logging_config
from streams.worker.ordering import Source
from streams.worker.processor import InputRecord
from tests.worker.test_loop import TOPICS, Harness, codec  # noqa: F401 - fixture


def test_json_lines_carry_faust_records_and_ours_with_their_fields() -> None:
    stream = io.StringIO()
    config = logging_config("info", "json")
    config["handlers"]["default"]["stream"] = stream
    logging.config.dictConfig(config)
    configure_structlog()
    try:
        logging.getLogger("faust.transport").warning("fetch %s failed", "tp-3")
        structlog.get_logger("streams.worker.loop").warning("dead_lettered", partition=3, offset=9)
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
        structlog.reset_defaults()
    foreign, ours = (json.loads(line) for line in stream.getvalue().splitlines())
    assert foreign["event"] == "fetch tp-3 failed" and foreign["level"] == "warning"
    assert foreign["logger"] == "faust.transport" and foreign["timestamp"].endswith("Z")
    assert ours["event"] == "dead_lettered" and (ours["partition"], ours["offset"]) == (3, 9)


def test_a_dead_letter_is_logged_with_its_coordinates_and_a_hashed_customer(
    codec: Codec,  # noqa: F811
) -> None:
    bad = codec.encode(
        "loyalty.v1.NpsResponse",
        {"event_id": "e-1", "customer_id": "c-0000001", "store_id": None,
         "occurred_at": 1_700_000_000_000, "score": 7, "comment": None},
    )  # fmt: skip
    # a key that is not the customer id: KEY_MISMATCH, whose message quotes both
    record = InputRecord(Source.FEEDBACK, TOPICS.feedback, 2, 41, 0, b"c-0000002", bad)
    harness = Harness(codec)
    harness.remaining[(Source.PURCHASES, 2)] = 0
    with capture_logs() as logs:
        harness.feed([record])
    [entry] = [e for e in logs if e["event"] == "dead_lettered"]
    assert entry["reason"] == "KEY_MISMATCH"
    assert (entry["topic"], entry["partition"], entry["offset"]) == (TOPICS.feedback, 2, 41)
    assert entry["event_id"] == "e-1"
    assert entry["customer_ref"] == customer_ref("c-0000001") != "c-0000001"
    assert "c-0000001" not in json.dumps(entry) and "c-0000002" not in json.dumps(entry)
    assert customer_ref("c-0000002") in entry["message"]


def test_customer_refs_are_stable_and_distinct() -> None:
    assert customer_ref("c-1") == customer_ref("c-1") != customer_ref("c-2")
    assert customer_ref(None) is None
