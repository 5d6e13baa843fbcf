"""The fetch of the deployment tools fails loudly: a version no registry serves is an error
that names the module and the version, never a skip or a silent pass."""

from __future__ import annotations

import re

import pytest

from tests.deploy import tools


def test_a_version_the_registry_does_not_serve_is_a_clear_error() -> None:
    missing = "v0.0.1-no-such-version"
    with pytest.raises(tools.ToolFetchError, match=re.escape(f"compose-go/v2@{missing}")):
        tools.go_module_dir(tools.COMPOSE_SPEC_MODULE, missing)


def test_a_module_without_the_expected_file_is_a_clear_error() -> None:
    with pytest.raises(tools.ToolFetchError, match=re.escape("has no schema/no-such-file.json")):
        tools.module_file(
            tools.COMPOSE_SPEC_MODULE, tools.COMPOSE_SPEC_VERSION, "schema/no-such-file.json"
        )
