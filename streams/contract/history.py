"""The committed versions of each event schema, and how a new one is recorded.

After changing a schema under `schemas/` in a way that changes its Parsing Canonical Form (a
field added, a symbol added, a type promoted; not a doc or a default), record it:

    .venv/bin/python -m streams.contract.history record

That checks the change against every committed version, both ways (see `compat`), and refuses a
breaking one; if compatible it writes `schemas/history/<Name>/<n+1>.avsc`, the new version made
self-contained. Commit it with the schema change. `... history check` exits 1 while a schema has
an unrecorded change or breaks compatibility; the contract tests run the same check.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from streams.contract.catalog import EventSchema, SchemaCatalog
from streams.contract.compat import compatibility_problems


def unrecorded(catalog: SchemaCatalog) -> list[EventSchema]:
    """Event schemas whose current version is not yet in their history."""
    return [
        event
        for event in catalog
        if not event.history or event.history[-1].canonical_form != event.current.canonical_form
    ]


def history_path(schema_dir: Path, event: EventSchema) -> Path:
    return schema_dir / "history" / event.name / f"{event.current.version}.avsc"


def record(catalog: SchemaCatalog) -> list[Path]:
    """Writes the current version of every changed event schema into its history. Raises
    ValueError, naming each problem, when a change breaks compatibility."""
    problems = [
        f"{event.name}: {problem}" for event in catalog for problem in compatibility_problems(event)
    ]
    if problems:
        raise ValueError("incompatible schema changes:\n  " + "\n  ".join(problems))
    written = []
    for event in unrecorded(catalog):
        path = history_path(catalog.schema_dir, event)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(event.current.definition, indent=2, ensure_ascii=False) + "\n")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m streams.contract.history",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=["check", "record"])
    parser.add_argument("--schemas", type=Path, default=None, help="schema folder (default: ours)")
    args = parser.parse_args(argv)
    catalog = SchemaCatalog.load(args.schemas)
    if args.action == "record":
        try:
            written = record(catalog)
        except ValueError as error:
            print(error, file=sys.stderr)
            return 1
        for path in written:
            print(f"recorded {path}")
        if not written:
            print("nothing to record: every schema is its latest committed version")
        return 0
    failures = [
        f"{event.name}: {problem}" for event in catalog for problem in compatibility_problems(event)
    ]
    failures += [
        f"{event.name}: changed but not recorded (run: python -m streams.contract.history record)"
        for event in unrecorded(catalog)
    ]
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
