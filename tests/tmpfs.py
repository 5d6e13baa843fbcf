"""Small filesystems for tests of a full or read-only state directory: a tmpfs of a given
size mounted on a test's directory. Mounting needs root (CAP_SYS_ADMIN); where it is refused
the tests that need one are skipped, saying so."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

Mount = Callable[..., Path]


def _mount(path: Path, size: str, read_only: bool) -> str | None:
    """Mounts; returns why not, or None."""
    mount = shutil.which("mount")
    if mount is None:
        return "no mount command"
    options = f"size={size},mode=0755" + (",ro" if read_only else "")
    result = subprocess.run(  # nosec B603: fixed arguments
        [mount, "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return None if result.returncode == 0 else (result.stderr.strip() or "mount refused")


@pytest.fixture(name="tmpfs")
def tmpfs_fixture(tmp_path: Path) -> Iterator[Mount]:
    """`tmpfs(size="1m", read_only=False)` mounts a fresh tmpfs under the test's directory and
    returns its path; every one is unmounted when the test ends."""
    mounted: list[Path] = []

    def mount(size: str = "1m", read_only: bool = False) -> Path:
        path = tmp_path / f"tmpfs-{len(mounted)}"
        path.mkdir()
        why_not = _mount(path, size, read_only)
        if why_not is not None:
            pytest.skip(f"cannot mount a tmpfs here ({why_not})")
        mounted.append(path)
        return path

    try:
        yield mount
    finally:
        for path in reversed(mounted):
            subprocess.run(["umount", "-l", str(path)], check=False)  # nosec B603 B607


def fill(path: Path) -> None:
    """Writes into `path` until its filesystem has no space left."""
    try:
        with (path / "filler").open("wb") as out:
            while True:
                out.write(b"\0" * 4096)
                out.flush()
    except OSError:
        pass  # full
