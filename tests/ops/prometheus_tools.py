"""Prometheus and promtool for the ops tests, from Debian's `prometheus` package: downloaded
with `apt-get download` and unpacked with `dpkg-deb -x` into `.tools/prometheus` (gitignored),
never installed as a service. A fresh machine may have no package lists yet: then
`apt-get update` first (root only), and the download again. Later runs reuse the unpacked tree.

Measured on the 2-core dev machine (Debian 12, Prometheus 2.42.0+ds-5+deb12u1): 3.6 s cold
(apt-get update into empty lists, 19 MB download), under 1 s with lists present, plus about
1 s to unpack; nothing on reuse."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "prometheus"
REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS_DIR = REPO_ROOT / ".tools" / "prometheus"
APT_TIMEOUT_S = 300


class PrometheusFetchError(RuntimeError):
    """The Debian package could not be fetched or unpacked: the message says what ran."""


@dataclass(frozen=True)
class PrometheusTools:
    prometheus: Path
    promtool: Path
    version: str  # first line of `prometheus --version`


def _unpacked(root: Path) -> PrometheusTools | None:
    prometheus, promtool = root / "usr/bin/prometheus", root / "usr/bin/promtool"
    if not (prometheus.is_file() and promtool.is_file()):
        return None
    try:
        shown = subprocess.run(
            [str(prometheus), "--version"], capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    # Prometheus 2.x prints its version on stderr
    first_line = (shown.stdout or shown.stderr).strip().splitlines()[0]
    return PrometheusTools(prometheus, promtool, first_line)


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=APT_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise PrometheusFetchError(f"`{' '.join(command)}` could not run: {error}") from error


def _download(work_dir: Path) -> Path:
    # As root apt drops to the `_apt` user for downloads, who cannot write to a private temp
    # dir; downloading as ourselves is what we want anyway.
    download = ["apt-get", "-o", "APT::Sandbox::User=root", "download", PACKAGE]
    fetched = _run(download, work_dir)
    if fetched.returncode != 0:
        # A fresh machine has no package lists ("Unable to locate package"): update, retry.
        updated = _run(["apt-get", "update"], work_dir)
        if updated.returncode != 0:
            raise PrometheusFetchError(
                f"`{' '.join(download)}` failed:\n{fetched.stderr.strip()}\n"
                f"and `apt-get update` (needed first on a fresh machine; needs root) failed:\n"
                f"{updated.stderr.strip()}"
            )
        fetched = _run(download, work_dir)
        if fetched.returncode != 0:
            raise PrometheusFetchError(
                f"`{' '.join(download)}` failed even after `apt-get update`:\n"
                f"{fetched.stderr.strip()}"
            )
    debs = sorted(work_dir.glob(f"{PACKAGE}_*.deb"))
    if not debs:
        raise PrometheusFetchError(f"`{' '.join(download)}` left no .deb in {work_dir}")
    return debs[0]


def fetch_prometheus(tools_dir: Path = TOOLS_DIR) -> PrometheusTools:
    """The unpacked Debian Prometheus under `tools_dir`, fetched if it is not there yet."""
    if (ready := _unpacked(tools_dir)) is not None:
        return ready
    tools_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tools_dir.parent, prefix=".fetching-") as scratch:
        work_dir = Path(scratch)
        deb = _download(work_dir)
        tree = work_dir / "tree"
        unpack = _run(["dpkg-deb", "-x", str(deb), str(tree)], work_dir)
        if unpack.returncode != 0:
            raise PrometheusFetchError(f"`dpkg-deb -x {deb.name}` failed: {unpack.stderr}")
        if _unpacked(tree) is None:
            raise PrometheusFetchError(f"{deb.name} holds no runnable usr/bin/prometheus")
        # Unpack aside, then rename: a run interrupted midway, or two sessions fetching at
        # once, never leave a half-unpacked tree that looks ready.
        if tools_dir.exists() and _unpacked(tools_dir) is None:
            shutil.rmtree(tools_dir)
        try:
            os.rename(tree, tools_dir)
        except OSError:
            if _unpacked(tools_dir) is None:  # not another session's complete tree: a failure
                raise
    tools = _unpacked(tools_dir)
    if tools is None:
        raise PrometheusFetchError(f"{tools_dir} is unpacked but prometheus does not run")
    return tools


def run_promtool(
    tools: PrometheusTools, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`promtool args...`, its exit status for the caller to judge."""
    return subprocess.run(
        [str(tools.promtool), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )
