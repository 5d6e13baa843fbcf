"""Debian's Prometheus and promtool for the ops tests, fetched once per machine (see
prometheus_tools.py). A failed fetch fails every test that needs them, with apt's own message:
they are part of `make test`, never skipped."""

from __future__ import annotations

import pytest

from tests.ops.prometheus_tools import PrometheusFetchError, PrometheusTools, fetch_prometheus


@pytest.fixture(scope="session")
def prometheus_tools() -> PrometheusTools:
    try:
        return fetch_prometheus()
    except PrometheusFetchError as error:
        pytest.fail(
            f"Debian's prometheus package (prometheus and promtool for tests/ops) could not "
            f"be fetched into .tools/prometheus:\n{error}",
            pytrace=False,
        )
