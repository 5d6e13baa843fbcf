"""What the deployment files name, checked against the code: a `loyalty` command line
against the typer app, an environment against `Settings`, a Dockerfile's instructions, a
`.dockerignore`'s patterns."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.main

from streams.cli import app
from streams.settings import Settings

# The settings' environment names: LOYALTY_<FIELD>, and the ecosystem's SCHEMA_REGISTRY_URL.
SETTING_OF_ENV = {
    **{f"LOYALTY_{name.upper()}": name for name in Settings.model_fields},
    "SCHEMA_REGISTRY_URL": "schema_registry_url",
}
del SETTING_OF_ENV["LOYALTY_SCHEMA_REGISTRY_URL"]


def is_setting_name(name: str) -> bool:
    """Names our settings would read: a misspelt LOYALTY_ one is a mistake, not another
    program's variable."""
    return name.startswith("LOYALTY_") or name == "SCHEMA_REGISTRY_URL"


def parse_loyalty_command(args: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """`args` as `loyalty` would parse them: the subcommand path (`topics create`) and the
    parameters. An unknown subcommand, option or bad value raises."""
    command: Any = typer.main.get_command(app)
    path: list[str] = []
    rest = list(args)
    while hasattr(command, "commands"):
        if not rest or rest[0] not in command.commands:
            known = ", ".join(sorted(command.commands))
            raise AssertionError(
                f"`loyalty {' '.join(args)}`: {' '.join(path) or 'loyalty'} has no subcommand "
                f"{rest[0] if rest else '(none given)'!r}; known: {known}"
            )
        path.append(rest.pop(0))
        command = command.commands[path[-1]]
    context = command.make_context(" ".join(path), rest)
    return " ".join(path), dict(context.params)


def settings_from_env(environment: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings a process with exactly these variables (of ours) would load; unknown
    LOYALTY_* names fail, as do values the settings refuse."""
    unknown = sorted(name for name in environment if is_setting_name(name)
                     and name not in SETTING_OF_ENV)  # fmt: skip
    assert not unknown, f"not settings of streams/settings.py: {unknown}"
    with monkeypatch.context() as patch:
        for name in SETTING_OF_ENV:
            patch.delenv(name, raising=False)
        for name, value in environment.items():
            if is_setting_name(name):
                patch.setenv(name, str(value))
        return Settings()


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str

    def json_or_words(self) -> list[str]:
        """Exec form (a JSON array) or shell words."""
        text = self.arguments.strip()
        if text.startswith("["):
            words: list[str] = json.loads(text)
            return words
        return shlex.split(text)


@dataclass(frozen=True)
class Stage:
    base: str
    name: str | None
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> list[Instruction]:
        return [each for each in self.instructions if each.keyword == keyword]

    def env(self) -> dict[str, str]:
        """ENV as the image has it (`KEY=VALUE` pairs; the legacy `KEY VALUE` form too)."""
        found: dict[str, str] = {}
        for each in self.all("ENV"):
            words = shlex.split(each.arguments)
            if words and "=" not in words[0]:
                found[words[0]] = " ".join(words[1:])
                continue
            for word in words:
                name, _, value = word.partition("=")
                found[name] = value
        return found


def dockerfile_stages(path: Path) -> list[Stage]:
    """A Dockerfile's build stages with their instructions: comments dropped, continued lines
    joined, ARGs before the first FROM substituted into FROM lines."""
    lines: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    current: list[Instruction] = []
    base = name = None
    for line in lines:
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and base is None:
            arg_name, _, default = arguments.strip().partition("=")
            global_args[arg_name] = default
            continue
        if keyword == "FROM":
            if base is not None:
                stages.append(Stage(base, name, tuple(current)))
            words = arguments.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: global_args[m.group(1)], words[0])
            name = words[2] if len(words) > 2 and words[1].upper() == "AS" else None
            current = []
            continue
        current.append(Instruction(keyword, arguments.strip()))
    assert base is not None, f"{path} has no FROM"
    stages.append(Stage(base, name, tuple(current)))
    return stages


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go's filepath.Match, plus `**` for any number of folders)."""
    parts = []
    for piece in re.split(r"(\*\*/?)", pattern):
        if piece.startswith("**"):
            parts.append("(?:.*/)?" if piece.endswith("/") else ".*")
        else:
            parts.append(fnmatch.translate(piece).removeprefix("(?s:").removesuffix(")\\Z"))
    return re.compile("".join(parts))


def dockerignore_excludes(ignore_file: Path, relative: str) -> bool:
    """Whether the build context leaves `relative` out: the last pattern that matches the
    path or one of its parent folders decides, `!` patterns put it back (Docker's rules)."""
    patterns = []
    for raw in ignore_file.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        body = line.removeprefix("!").strip().strip("/")
        patterns.append((negated, _glob_regex(body)))
    pieces = relative.strip("/").split("/")
    candidates = ["/".join(pieces[: i + 1]) for i in range(len(pieces))]
    excluded = False
    for negated, regex in patterns:
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = not negated
    return excluded
