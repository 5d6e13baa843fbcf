"""The agent's buffer survives the end of recovery: what Faust delivered to it, it processes
(see `flow_control` for the records a fresh worker lost to Faust's clear)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streams.settings import Settings
from streams.worker.app import build_app
from streams.worker.flow_control import KeepDeliveredOnResume


def buffers(tmp_path: Path) -> tuple[KeepDeliveredOnResume, Any, Any]:
    app, _loop = build_app(Settings(data_dir=tmp_path))
    flow_control = app.flow_control
    assert isinstance(flow_control, KeepDeliveredOnResume)  # the worker's, not Faust's
    kept = app.FlowControlQueue(maxsize=10, clear_on_resume=True)
    other = app.FlowControlQueue(maxsize=10, clear_on_resume=True)
    flow_control.keep(kept)
    for queue in (kept, other):
        queue.put_nowait("record")
    return flow_control, kept, other


def test_resuming_the_flow_leaves_the_kept_buffer_as_it_is(tmp_path: Path) -> None:
    flow_control, kept, other = buffers(tmp_path)
    flow_control.suspend()
    flow_control.resume()
    assert flow_control.is_active()
    assert kept.qsize() == 1
    assert other.qsize() == 0  # Faust's other buffers (changelog reading) as before


def test_a_clear_asked_for_empties_every_buffer(tmp_path: Path) -> None:
    """What Faust clears when partitions are revoked is read again after the next seek."""
    flow_control, kept, other = buffers(tmp_path)
    flow_control.clear()
    assert kept.qsize() == 0 and other.qsize() == 0
    kept.put_nowait("record")
    flow_control.resume()  # a clear inside a resume keeps, a later one does not
    flow_control.clear()
    assert kept.qsize() == 0
