"""The rules file: DOMAIN.md's defaults ship in the repo; a wrong file names the key and why."""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from streams.program import ProgramError, describe_program, load_program, parse_program

RULES = Path(__file__).resolve().parents[2] / "loyalty-program.toml"
Document = dict[str, Any]


def shipped() -> Document:
    return tomllib.loads(RULES.read_text())


def test_the_shipped_file_holds_the_domain_defaults() -> None:
    program = load_program(RULES)
    assert program.currency == "EUR"
    assert [(t.name, t.threshold_minor) for t in program.tiers] == [
        ("member", 0),
        ("silver", 50000),
        ("gold", 150000),
        ("platinum", 500000),
    ]
    assert [t.discount_percent for t in program.tiers] == [0, 3, 5, 7]
    assert [t.multiplier for t in program.tiers] == [
        Decimal(1),
        Decimal("1.25"),
        Decimal("1.5"),
        Decimal(2),
    ]
    assert program.points_per_unit == 1
    assert (program.points_expiry_days, program.qualification_window_days) == (365, 365)
    assert (program.requalification_days, program.downgrade_warning_days) == (365, 30)
    assert [(c.category, c.stamps) for c in program.punch_cards] == [("coffee", 5)]
    assert (program.complaint_sla_hours, program.service_recovery_from_tier) == (48, "gold")
    assert (program.attached_visits, program.attached_window_days) == (4, 180)
    assert (program.promoter_from_score, program.detractor_up_to_score) == (9, 6)
    params = program.churn.params
    assert (params.r, params.alpha, params.a, params.b) == (0.243, 4.414, 0.793, 2.426)
    assert program.churn.unit == "weeks"
    assert program.churn.levels.names == ("none", "watch", "at_risk", "churned")
    # 1.25 points per 100 minor units, kept as an exact fraction
    assert program.points_rate[1] == (1, 80)


def test_the_rules_version_is_the_version_and_a_hash_of_the_content() -> None:
    program = parse_program(shipped())
    assert program.version.startswith("2026.11+")
    assert len(program.version.split("+")[1]) == 8
    # comments and spacing do not change it; a changed rule does
    commented = RULES.read_text().replace("[points]", "# a comment\n[points]   ")
    assert parse_program(tomllib.loads(commented)).version == program.version
    changed = shipped()
    changed["points"]["expiry_days"] = 400
    assert parse_program(changed).version != program.version


Mutation = Callable[[Document], None]


def _set(path: str, value: object) -> Mutation:
    def mutate(document: Document) -> None:
        *parents, last = path.split(".")
        node: Any = document
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is None:
            del node[last]
        else:
            node[last] = value

    return mutate


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_set("points.expiry_day", 3), "points.expiry_day: unknown key"),
        (_set("points.expiry_days", 0), "points.expiry_days: Input should be greater than"),
        (_set("tier.2.threshold", 100), "tier[3] (gold).threshold: 100 must be above"),
        (_set("tier.0.threshold", 10), "tier[1] (member).threshold: the first tier must"),
        (_set("tier.1.threshold", "5.001"), "more decimals than EUR allows"),
        (_set("tier.1.name", "member"), "the name 'member' is used twice"),
        (_set("tier.1.multiplier", "lots"), "tier[2].multiplier"),
        (_set("currency", "euro"), "currency: currency 'euro' is not a three-letter"),
        (_set("version", None), "version: required key is missing"),
        (_set("complaints.service_recovery_from_tier", "vip"), "'vip' is not a tier"),
        (_set("qualification.downgrade_warning_days", 365), "must be shorter than"),
        (_set("churn.model.unit", "months"), "churn.model.unit: Input should be 'days' or"),
        (_set("churn.model.r", None), "churn.model.r: required key is missing"),
        (_set("churn.model.a", -1.0), "churn.model.a: Input should be greater than 0"),
        (
            _set("churn.levels.watch", {"raise_at": 0.3, "clear_below": 0.5}),
            "watch: clear_below (0.5) must be below raise_at (0.3)",
        ),
        (_set("churn.levels.watch", {"raise_at": 0.3}), "watch.clear_below: Field required"),
        (_set("churn.levels.watch", 3), "watch: a level is a table"),
        (_set("nps.detractor_up_to", 9), "must be below promoter_from"),
    ],
)
def test_a_wrong_file_names_the_key_and_why(mutate: Mutation, message: str) -> None:
    document = copy.deepcopy(shipped())
    mutate(document)
    with pytest.raises(ProgramError) as raised:
        parse_program(document, source="mine.toml")
    assert str(raised.value).startswith("mine.toml: ")
    assert message in str(raised.value)


def test_not_toml_and_missing_files_are_program_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("version = \n")
    with pytest.raises(ProgramError, match="not valid TOML"):
        load_program(broken)
    with pytest.raises(ProgramError, match="cannot read"):
        load_program(tmp_path / "absent.toml")


def test_the_program_in_words_names_every_rule() -> None:
    words = describe_program(load_program(RULES))
    for phrase in [
        "Program 2026.11+",
        "gold       from    1500.00 EUR: 5% discount, points x1.5",
        "a warning 30 days",
        "Punch card coffee: buy 5, the next one is free.",
        "Returns within 90 days",
        "overdue after 48 hours",
        "passives 7-8",
        "watch      entered at score 0.5, left below 0.4",
    ]:
        assert phrase in words
