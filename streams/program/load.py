"""Reading the rules file into the core's `Program`, with errors that name the key and why."""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from streams.contract.money import minor_unit_exponent, to_minor_units
from streams.core.churn import BgNbdParams, ChurnModel, RiskLevel, RiskLevels, RiskWeights
from streams.core.rules import Program, PunchCard, Tier
from streams.program.model import ProgramFile


class ProgramError(ValueError):
    """A rules file that cannot be a program; the message names the file, the key and why."""


def _key_path(location: tuple[int | str, ...]) -> str:
    """('tier', 1, 'threshold') -> 'tier[2].threshold' (positions counted from 1, as people do)."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part + 1}]"
        else:
            text += f".{part}" if text else part
    return text


def _problems(error: ValidationError) -> list[str]:
    lines = []
    for problem in error.errors(include_url=False):
        key = _key_path(tuple(problem["loc"]))
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown key (a typo?)"
        elif problem["type"] == "missing":
            message = "required key is missing"
        elif "input" in problem and problem["type"] not in {"value_error", "assertion_error"}:
            message = f"{message} (got {problem['input']!r})"
        lines.append(f"{key}: {message}" if key else message)
    return lines


def rules_version(version: str, document: dict[str, Any]) -> str:
    """`<version>+<8 hex>`: the file's own version and a hash of its parsed content, so two files
    with the same version but different rules never pass for one another."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return f"{version}+{hashlib.sha256(canonical.encode()).hexdigest()[:8]}"


def parse_program(document: dict[str, Any], *, source: str = "rules") -> Program:
    """A parsed TOML document to the core's Program; ProgramError names every bad key."""
    try:
        model = ProgramFile.model_validate(document)
    except ValidationError as error:
        problems = _problems(error)
        raise ProgramError(f"{source}: " + "\n  ".join(problems)) from None
    return to_program(model, rules_version(model.version, document))


def to_program(model: ProgramFile, version: str) -> Program:
    currency = model.currency
    churn = model.churn
    signals = churn.signals
    return Program(
        version=version,
        currency=currency,
        currency_exponent=minor_unit_exponent(currency),
        tiers=tuple(
            Tier(
                entry.name,
                to_minor_units(entry.threshold, currency),
                entry.discount_percent,
                entry.multiplier,
            )
            for entry in model.tier
        ),
        points_per_unit=model.points.per_unit,
        points_expiry_days=model.points.expiry_days,
        qualification_window_days=model.qualification.window_days,
        requalification_days=model.qualification.requalify_days,
        downgrade_warning_days=model.qualification.downgrade_warning_days,
        punch_cards=tuple(PunchCard(card.category, card.stamps) for card in model.punch_card),
        return_window_days=model.returns.window_days,
        complaint_sla_hours=model.complaints.sla_hours,
        service_recovery_from_tier=model.complaints.service_recovery_from_tier,
        attached_visits=model.stages.attached_visits,
        attached_window_days=model.stages.attached_window_days,
        category_window_days=model.categories.window_days,
        occasional_from_visits=model.categories.occasional_from_visits,
        regular_from_visits=model.categories.regular_from_visits,
        promoter_from_score=model.nps.promoter_from,
        detractor_up_to_score=model.nps.detractor_up_to,
        churn=ChurnModel(
            BgNbdParams(r=churn.model.r, alpha=churn.model.alpha, a=churn.model.a, b=churn.model.b),
            unit=churn.model.unit,
            levels=RiskLevels(
                base=churn.levels.base,
                above=tuple(
                    RiskLevel(name, raise_at=bounds.raise_at, clear_below=bounds.clear_below)
                    for name, bounds in churn.levels.above.items()
                ),
            ),
            weights=RiskWeights(
                detractor=signals.detractor,
                overdue_complaint=signals.overdue_complaint,
                falling_average_check=signals.falling_average_check,
                gap_beyond_cadence=signals.gap_beyond_cadence,
                gap_cadence_factor=signals.gap_cadence_factor,
                gap_min_repeat_visits=signals.gap_min_repeat_visits,
                low_p_alive_below=signals.low_p_alive_below,
                falling_check_ratio=signals.falling_check_ratio,
            ),
        ),
        recent_receipts=signals.recent_receipts,
    )


def load_program(path: Path) -> Program:
    """The program of a rules file (TOML)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ProgramError(f"{path}: cannot read the rules file ({error.strerror})") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ProgramError(f"{path}: not valid TOML: {error}") from None
    try:
        return parse_program(document, source=str(path))
    except ValueError as error:
        if isinstance(error, ProgramError):
            raise
        # a rule the core checks that the file model let through
        raise ProgramError(f"{path}: {error}") from None
