"""The package's names load lazily, so light modules of streams.contract stay light."""

from __future__ import annotations

import subprocess
import sys

import streams.contract


def test_every_public_name_resolves() -> None:
    assert sorted(streams.contract.__all__) == sorted(streams.contract._EXPORTS)
    for name in streams.contract.__all__:
        assert getattr(streams.contract, name) is not None


def test_the_topic_table_loads_without_fastavro() -> None:
    probe = "import sys, streams.contract.topics; print('fastavro' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False"
