"""The worker image, without a Docker engine: the Dockerfile's instructions checked against
the code and the repository, and its install steps replayed on this machine (the same uv,
lock file and build constraints) to show the installed package runs outside the source
tree with the image's environment."""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import pytest

from streams.settings import Settings
from tests.deploy.checks import (
    Stage,
    dockerfile_stages,
    dockerignore_excludes,
    parse_loyalty_command,
    settings_from_env,
)
from tests.deploy.tools import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
UV = REPO_ROOT / ".tools" / "bin" / "uv"


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return dockerfile_stages(DOCKERFILE)


def makefile_uv_version() -> str:
    found = re.search(r"^UV_VERSION := (\S+)$", (REPO_ROOT / "Makefile").read_text(), re.M)
    assert found, "the Makefile pins uv as UV_VERSION"
    return found.group(1)


def test_the_base_is_a_slim_python_of_the_projects_version(stages: list[Stage]) -> None:
    requires = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"][
        "requires-python"
    ]
    minor = re.search(r">=(\d+\.\d+)", requires)
    assert minor
    for stage in stages:
        assert re.fullmatch(rf"python:{re.escape(minor.group(1))}-slim(-\w+)?", stage.base), stage
    # the worker needs no JVM: nothing installs one
    text = DOCKERFILE.read_text().lower()
    assert "openjdk" not in text and "jre" not in text.split() and "apt-get install" not in text


def test_uv_is_the_makefiles_and_every_install_is_hash_checked(stages: list[Stage]) -> None:
    requirement = (REPO_ROOT / "docker/uv-requirements.txt").read_text()
    assert f"uv=={makefile_uv_version()} " in requirement
    runs = " ".join(i.arguments for stage in stages for i in stage.all("RUN"))
    assert "--require-hashes -r /tmp/uv-requirements.txt" in runs
    assert "uv sync --frozen --no-dev" in runs  # uv.lock's hashes
    assert "--build-constraints /tmp/build-constraints.txt --require-hashes" in runs


def test_the_image_runs_loyalty_worker_as_a_non_root_user(stages: list[Stage]) -> None:
    final = stages[-1]
    (entrypoint,) = final.all("ENTRYPOINT")
    (cmd,) = final.all("CMD")
    assert entrypoint.json_or_words() == ["loyalty"]
    path, _ = parse_loyalty_command(cmd.json_or_words())
    assert path == "worker"
    (user,) = final.all("USER")
    uid = user.arguments.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "a numeric uid, so runAsNonRoot can check it"


def test_the_environment_names_real_settings_and_the_data_dir_is_a_volume(
    stages: list[Stage], monkeypatch: pytest.MonkeyPatch
) -> None:
    final = stages[-1]
    settings = settings_from_env(final.env(), monkeypatch)
    volumes = [word for i in final.all("VOLUME") for word in i.json_or_words()]
    assert str(settings.data_dir) == "/var/lib/loyalty"
    assert str(settings.data_dir) in volumes
    exposed = [word for i in final.all("EXPOSE") for word in i.json_or_words()]
    assert exposed == [str(Settings.model_fields["web_port"].default)]
    copied = [i.json_or_words() for i in final.all("COPY")]
    assert ["loyalty-program.toml", str(settings.rules)] in copied


def test_the_healthcheck_asks_healthz_at_the_address_the_api_binds(stages: list[Stage]) -> None:
    (check,) = stages[-1].all("HEALTHCHECK")
    assert "/healthz" in check.arguments
    assert "LOYALTY_WEB_HOST" in check.arguments and "LOYALTY_WEB_PORT" in check.arguments


def test_every_copied_path_exists_and_is_in_the_build_context(stages: list[Stage]) -> None:
    sources = [
        word
        for stage in stages
        for instruction in stage.all("COPY")
        if not instruction.arguments.startswith("--from")
        for word in instruction.json_or_words()[:-1]
    ]
    assert sources
    for source in sources:
        assert (REPO_ROOT / source).exists(), f"COPY {source}: no such path"
        assert not dockerignore_excludes(DOCKERIGNORE, source), f".dockerignore drops {source}"
    for inside in ("streams/worker/app.py", "schemas/loyalty.v1.Purchase.avsc"):
        assert not dockerignore_excludes(DOCKERIGNORE, inside)


def test_the_build_context_leaves_the_work_tree_out() -> None:
    for outside in (".venv/bin/python", ".tools/bin/uv", ".git/HEAD", "tests/conftest.py",
                    "streams/core/__pycache__/fold.cpython-311.pyc"):  # fmt: skip
        assert dockerignore_excludes(DOCKERIGNORE, outside), outside


def _run(
    command: list[str | Path], cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(map(str, command))}:\n{done.stdout}\n{done.stderr}"
    return done


def test_the_images_install_steps_give_a_working_loyalty_outside_the_source_tree(
    tmp_path: Path,
) -> None:
    """The builder stage's three steps, with the image's flags: dependencies from uv.lock,
    the wheel built with the pinned build backend, installed non-editable; then the final
    stage's environment, from a folder with no repository around it."""
    assert UV.is_file(), f"{UV}: made by `make install`"
    venv = tmp_path / "opt-loyalty"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_PYTHON_DOWNLOADS": "never"}
    python = shutil.which("python3.11") or "python3"
    _run([UV, "sync", "--frozen", "--no-dev", "--no-install-project", "--python", python,
          "--quiet"], cwd=REPO_ROOT, env=env)  # fmt: skip
    _run([UV, "build", "--wheel", "--out-dir", tmp_path / "dist", "--python", python,
          "--build-constraints", "docker/build-constraints.txt", "--require-hashes", "--quiet"],
         cwd=REPO_ROOT, env=env)  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    _run([UV, "pip", "install", "--python", venv / "bin/python", "--no-deps", wheel, "--quiet"],
         cwd=None, env=env)  # fmt: skip

    # the final stage: its ENV, the rules file where it copies it, no source tree
    image_env = dockerfile_stages(DOCKERFILE)[-1].env()
    root = tmp_path / "image"
    rules = root / image_env["LOYALTY_RULES"].lstrip("/")
    rules.parent.mkdir(parents=True)
    shutil.copy(REPO_ROOT / "loyalty-program.toml", rules)
    work = root / "var/lib/loyalty"
    work.mkdir(parents=True)
    run_env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        **{name: value for name, value in image_env.items() if name != "PATH"},
        "LOYALTY_RULES": str(rules),
        "LOYALTY_DATA_DIR": str(work),
        "LOYALTY_CACHE_DIR": str(work / "cache"),
    }
    loyalty = venv / "bin" / "loyalty"
    _run([loyalty, "worker", "--help"], cwd=work, env=run_env)
    events = work / "events.jsonl"
    _run([loyalty, "simulate", "--customers", "20", "--events", "300", "--out", events],
         cwd=work, env=run_env)  # fmt: skip
    states = work / "states.jsonl"
    replayed = _run([loyalty, "replay", events, "--as-of", "2030-01-01", "--out", states],
                    cwd=work, env=run_env)  # fmt: skip
    assert len(states.read_text().splitlines()) >= 10
    # the image has no native replay engine (no Rust in it): the Python engine, and a notice
    assert "replaying with the Python engine" in replayed.stderr
    # the schemas travel inside the package, and the code finds them there
    found = _run([venv / "bin/python", "-c",
                  "from streams.contract.catalog import default_schema_dir as d; print(d())"],
                 cwd=work, env=run_env)  # fmt: skip
    schema_dir = Path(found.stdout.strip())
    assert schema_dir.is_relative_to(venv), schema_dir
    assert (schema_dir / "loyalty.v1.Purchase.avsc").is_file()


class _Worker(http.server.BaseHTTPRequestHandler):
    """Answers /healthz as the worker does; anything else is a 404."""

    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b'{"status": "alive"}')

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_the_healthcheck_command_passes_on_a_live_api_and_fails_without_one(
    stages: list[Stage],
) -> None:
    (check,) = stages[-1].all("HEALTHCHECK")
    command = json.loads(check.arguments[check.arguments.index("CMD") + len("CMD") :])
    assert command[0] == "python"
    command[0] = sys.executable  # the image's PATH finds its python first

    def healthy(env: dict[str, str]) -> bool:
        done = subprocess.run(command, env=env, capture_output=True, timeout=30, check=False)
        return done.returncode == 0

    server = http.server.HTTPServer(("127.0.0.1", 0), _Worker)
    port = str(server.server_address[1])
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        assert healthy({"LOYALTY_WEB_HOST": "127.0.0.1", "LOYALTY_WEB_PORT": port})
        # bound to every interface (the image's default): asked on the loopback
        assert healthy({"LOYALTY_WEB_HOST": "0.0.0.0", "LOYALTY_WEB_PORT": port})
    finally:
        server.shutdown()
        server.server_close()
    assert not healthy({"LOYALTY_WEB_HOST": "127.0.0.1", "LOYALTY_WEB_PORT": port})
