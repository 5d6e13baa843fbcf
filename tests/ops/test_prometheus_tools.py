"""The Prometheus fetch on a machine that has never run it, offline: a stand-in `apt-get` on
PATH serves a small .deb built here, and refuses downloads until `apt-get update` ran, as a
fresh Debian does."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.ops.prometheus_tools import PrometheusFetchError, fetch_prometheus

VERSION_LINE = "prometheus, version 9.9.9+ds (branch: debian/sid)"

FAKE_APT = """#!/bin/sh
# stand-in apt-get: logs its calls; a download needs the package lists an update writes
echo "$*" >> {state}/calls
case "$*" in
  *update*)
    if [ -e {state}/update-fails ]; then
      echo "E: Could not open lock file - open (13: Permission denied)" >&2; exit 100
    fi
    touch {state}/lists ;;
  *download*)
    if [ ! -e {state}/lists ]; then
      echo "E: Unable to locate package prometheus" >&2; exit 100
    fi
    cp {deb} . ;;
esac
"""


def build_deb(where: Path) -> Path:
    root = where / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: prometheus\nVersion: 9.9.9+ds\nArchitecture: all\n"
        "Maintainer: tests <tests@example.org>\nDescription: stand-in\n"
    )
    (root / "usr" / "bin").mkdir(parents=True)
    for tool in ("prometheus", "promtool"):
        script = root / "usr" / "bin" / tool
        # like Prometheus 2.x, the version goes to stderr
        script.write_text(f"#!/bin/sh\necho '{VERSION_LINE.replace('prometheus', tool)}' >&2\n")
        script.chmod(0o755)
    deb = where / "prometheus_9.9.9+ds_all.deb"
    subprocess.run(["dpkg-deb", "--build", str(root), str(deb)], check=True, capture_output=True)
    return deb


@pytest.fixture
def apt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The stand-in's state dir: `calls` logs each call; touch `update-fails` to refuse."""
    state = tmp_path / "apt-state"
    state.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "apt-get"
    fake.write_text(FAKE_APT.format(state=state, deb=build_deb(tmp_path)))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return state


def calls(apt: Path) -> list[str]:
    log = apt / "calls"
    return [line.split()[-1] for line in log.read_text().splitlines()] if log.exists() else []


def test_a_fresh_machine_updates_the_package_lists_then_downloads(
    apt: Path, tmp_path: Path
) -> None:
    tools = fetch_prometheus(tmp_path / "tools" / "prometheus")
    assert calls(apt) == ["prometheus", "update", "prometheus"]  # download, update, download
    assert tools.version == VERSION_LINE
    assert tools.prometheus == tmp_path / "tools" / "prometheus" / "usr" / "bin" / "prometheus"
    assert tools.promtool.is_file()
    # nothing left behind but the unpacked tree
    assert [p.name for p in (tmp_path / "tools").iterdir()] == ["prometheus"]


def test_a_second_run_reuses_the_unpacked_tree(apt: Path, tmp_path: Path) -> None:
    fetch_prometheus(tmp_path / "tools" / "prometheus")
    before = calls(apt)
    again = fetch_prometheus(tmp_path / "tools" / "prometheus")
    assert calls(apt) == before
    assert again.version == VERSION_LINE


def test_a_half_unpacked_tree_is_fetched_again(apt: Path, tmp_path: Path) -> None:
    broken = tmp_path / "tools" / "prometheus" / "usr" / "bin"
    broken.mkdir(parents=True)
    (broken / "promtool").write_text("")  # an interrupted copy: no prometheus beside it
    tools = fetch_prometheus(tmp_path / "tools" / "prometheus")
    assert tools.version == VERSION_LINE


def test_a_failed_update_says_what_apt_said_and_what_to_do(apt: Path, tmp_path: Path) -> None:
    (apt / "update-fails").touch()
    with pytest.raises(PrometheusFetchError) as failure:
        fetch_prometheus(tmp_path / "tools" / "prometheus")
    message = str(failure.value)
    assert "Unable to locate package prometheus" in message
    assert "Permission denied" in message
    assert "apt-get update" in message and "root" in message
    assert not (tmp_path / "tools" / "prometheus").exists()
