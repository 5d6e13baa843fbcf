"""Compiles a copy of `streams/core` with mypyc, to measure it against the pure-Python core.

    .venv/bin/python -m bench.mypyc_core DEST [--source .] [--opt-level 3]
    .venv/bin/python -m bench.ab SOURCE DEST traffic.jsonl      # then compare side by side

Copies SOURCE's `streams` package to DEST (nothing in SOURCE changes) and builds C extensions
next to DEST/streams/core/*.py; importing `streams.core` from DEST then loads the compiled
modules (an extension module wins over the .py of the same name), and removing the .so files
falls back to the pure modules. mypyc ships inside the mypy wheel; the build needs a C compiler
and Python's headers. setuptools is not installed here, so this drives distutils (in the
standard library up to Python 3.11) directly, as `mypyc`'s own command line would setuptools.

Findings (2026-11-23, mypy 2.4.1, gcc 12, -O3; figures in bench/results/mypyc-latest.json):
- `events.py` must stay interpreted (`--interpreted events`): mypyc turns its frozen
  dataclasses into native classes and the ClassVar SCHEMA / TOPIC_ROLE before the fields then
  breaks dataclass's own argument order ("non-default argument 'event_id' follows default").
- Compiled, two tests of tests/core fail for what they inspect, not for what the core does:
  `StateDraft.__slots__` (a native class has no `__slots__`) and the purity test (the
  compiled package imports its shared runtime module `<hash>__mypyc`). Replay's output bytes
  are identical to the pure core's on 100k simulated rows.
- Side by side with the pure core: fold x1.45, replay x1.34 (100k rows, 4 rounds). The state
  is named tuples and the events frozen dataclasses, which mypyc leaves as Python objects, so
  most of the fold's attribute reads and allocations stay as slow as before."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

# Runs in DEST: distutils must see the sources by relative path to place the .so files.
_SETUP = r"""
import sys
from distutils.core import setup

import mypyc.build
from mypyc.build import mypycify

# mypycify patches setuptools' copy step, which distutils does not have; nothing to patch
mypyc.build._setuptools_patch_applied = True

modules = sys.argv[1].split(",")
setup(
    name="streams_core_native",
    ext_modules=mypycify(modules, opt_level=sys.argv[2], strict_dunder_typing=False),
    script_args=["build_ext", "--inplace"],
)
"""


def main(
    dest: Path,
    source: Annotated[Path, typer.Option()] = Path(),
    opt_level: Annotated[str, typer.Option()] = "3",
    interpreted: Annotated[str, typer.Option(help="modules left pure, comma-separated")] = "",
) -> None:
    if (dest / "streams").exists():
        shutil.rmtree(dest / "streams")
    for stale in dest.glob("*__mypyc*.so"):  # the shared runtime of an earlier build
        stale.unlink()
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(
        source / "streams", dest / "streams", ignore=shutil.ignore_patterns("__pycache__", "*.so")
    )
    left_pure = {f"{name}.py" for name in interpreted.split(",") if name}
    # what the package finds beside itself (streams.settings.REPO_ROOT)
    for beside in ("loyalty-program.toml", "schemas", "docs"):
        if (source / beside).is_dir():
            shutil.copytree(source / beside, dest / beside, dirs_exist_ok=True)
        elif (source / beside).exists():
            shutil.copy2(source / beside, dest / beside)
    modules = sorted(
        str(path.relative_to(dest))
        for path in (dest / "streams/core").glob("*.py")
        if path.name not in left_pure
    )
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", _SETUP, ",".join(modules), opt_level],
        cwd=dest,
        env={**os.environ, "PYTHONPATH": str(dest.resolve())},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    seconds = time.perf_counter() - started
    built = sorted(path.name for path in dest.rglob("*.so"))
    typer.echo(f"built {len(built)} extension modules in {seconds:.0f} s: {', '.join(built)}")


if __name__ == "__main__":
    typer.run(main)
