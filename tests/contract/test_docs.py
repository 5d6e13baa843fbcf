"""docs/events.md is generated from the schemas where it states their facts, and stays so."""

from __future__ import annotations

from pathlib import Path

from streams.contract import docs
from streams.contract.catalog import SchemaCatalog
from tests.contract.conftest import copy_schemas, edit_schema, field_of


def test_the_committed_page_is_up_to_date_with_the_schemas(catalog: SchemaCatalog) -> None:
    page = docs.DEFAULT_PAGE.read_text(encoding="utf-8")
    assert docs.render_page(catalog, page) == page, (
        "docs/events.md is out of date: run `.venv/bin/python -m streams.contract.docs`"
    )


def test_every_schema_and_field_appears_with_its_doc(catalog: SchemaCatalog) -> None:
    page = docs.DEFAULT_PAGE.read_text(encoding="utf-8")
    for event in catalog:
        assert f"### {event.name}\n" in page
        assert event.current.fingerprint_hex in page
        for record_field in event.current.definition["fields"]:
            assert f"| `{record_field['name']}` |" in page
    assert "| `quantity` | int |" in page  # LineItem, a shared type, has its own table
    assert "Symbols: `UP`, `DOWN`, `UNKNOWN`; default `UNKNOWN`." in page


def test_a_schema_change_makes_the_page_stale(tmp_path: Path, catalog: SchemaCatalog) -> None:
    folder = copy_schemas(tmp_path)
    edit_schema(
        folder,
        "loyalty.v1.NpsResponse",
        lambda d: field_of(d, "score").update(doc="The answer | 0 to 10."),
    )
    page = docs.DEFAULT_PAGE.read_text(encoding="utf-8")
    stale = tmp_path / "events.md"
    stale.write_text(page)
    rendered = docs.render_page(SchemaCatalog.load(folder), page)
    assert "| `score` | int |  | The answer \\| 0 to 10. |" in rendered
    assert docs.main(["--check", "--page", str(stale), "--schemas", str(folder)]) == 1
    assert docs.main(["--page", str(stale), "--schemas", str(folder)]) == 0
    assert stale.read_text() == rendered
    assert docs.render_page(catalog, rendered) == page
