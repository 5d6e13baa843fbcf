"""Fixtures of the contract tests: the committed catalog and codec (built once), and copies of
the schema folder that a test may change."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streams.contract.catalog import SchemaCatalog, default_schema_dir
from streams.contract.codec import Codec
from streams.contract.topics import EVENT_SCHEMAS, full_name, short_name

SchemaEdit = Callable[[dict[str, Any]], None]

EVENT_NAMES = tuple(short_name(name) for name in EVENT_SCHEMAS)
"""Short names of the event schemas, for parametrizing; the codec speaks full names."""

__all__ = ["EVENT_NAMES", "copy_schemas", "edit_schema", "field_of", "full_name"]


@pytest.fixture(scope="session")
def catalog() -> SchemaCatalog:
    return SchemaCatalog.load()


@pytest.fixture(scope="session")
def codec(catalog: SchemaCatalog) -> Codec:
    return Codec(catalog)


def copy_schemas(target: Path) -> Path:
    """A copy of the committed schema folder (history included) under `target`."""
    folder = target / "schemas"
    shutil.copytree(default_schema_dir(), folder)
    return folder


def edit_schema(folder: Path, full_name: str, edit: SchemaEdit) -> None:
    """Changes the source file of one named type in a copied schema folder."""
    path = folder / f"{full_name}.avsc"
    definition = json.loads(path.read_text())
    edit(definition)
    path.write_text(json.dumps(definition, indent=2))


def field_of(definition: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in definition["fields"] if f["name"] == name)
