"""Session fixtures for the deployment tests: the real tools and published schemas of
`tools`, fetched once per session (built or downloaded on a fresh machine, reused after).
A fetch that fails is an error of every test that needs it, never a skip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.deploy import tools


@pytest.fixture(scope="session")
def kustomize_binary() -> Path:
    return tools.kustomize()


@pytest.fixture(scope="session")
def compose_schema() -> dict[str, Any]:
    return tools.compose_schema()


@pytest.fixture(scope="session")
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """Schemas of our custom resources by (apiVersion, kind): the published CRDs, and
    KafkaTopic from Strimzi's published API model, for each version it serves."""
    schemas = tools.published_crd_schemas()
    kafka_topic = tools.strimzi_kafka_topic_schema()
    for api_version in kafka_topic["properties"]["apiVersion"]["enum"]:
        schemas[(api_version, "KafkaTopic")] = kafka_topic
    return schemas
