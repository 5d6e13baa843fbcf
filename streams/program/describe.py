"""The program in words, for `loyalty rules check` and for people reviewing a changed file."""

from __future__ import annotations

from streams.contract.money import format_minor_units
from streams.core.rules import Program


def _rate(value: object) -> str:
    text = str(value)
    return text.rstrip("0").rstrip(".") if "." in text else text


def describe_program(program: Program) -> str:
    money = program.currency

    def amount(minor: int) -> str:
        return f"{format_minor_units(minor, money)} {money}"

    lines = [
        f"Program {program.version} in {money}.",
        "",
        f"Points: {_rate(program.points_per_unit)} per 1 {money} of net spend, times the tier's "
        "multiplier, rounded down per purchase; all points lapse after "
        f"{program.points_expiry_days} days without a purchase.",
        "",
        f"Tiers by net spend over the last {program.qualification_window_days} days "
        "(a purchase that old no longer counts):",
    ]
    for tier in program.tiers:
        lines.append(
            f"  {tier.name:<10} from {amount(tier.threshold_minor):>14}: "
            f"{_rate(tier.discount_percent)}% discount, points x{_rate(tier.multiplier)}"
        )
    lines += [
        f"The top tier, {program.tiers[-1].name}, is the closed club. "
        "Upgrade at once on the purchase that crosses a threshold. Downgrade only at "
        f"re-qualification, {program.requalification_days} days after the tier was reached, "
        f"to the highest tier still held; a warning {program.downgrade_warning_days} days "
        "before a downgrade that would happen.",
        "",
    ]
    if program.punch_cards:
        for card in program.punch_cards:
            lines.append(f"Punch card {card.category}: buy {card.stamps}, the next one is free.")
    else:
        lines.append("No punch cards.")
    lines += [
        f"Returns within {program.return_window_days} days undo what the purchase earned "
        "(spend, points, stamps; in proportion for a partial return) and an upgrade it caused "
        "if the rest of the spend no longer holds the tier.",
        "",
        f"Complaints are overdue after {program.complaint_sla_hours} hours; from "
        f"{program.service_recovery_from_tier} up a complaint earns a service-recovery reward "
        "at once.",
        f"NPS: promoters {program.promoter_from_score}-10, passives "
        f"{program.detractor_up_to_score + 1}-{program.promoter_from_score - 1}, detractors "
        f"0-{program.detractor_up_to_score}.",
        f"Stages: attached from {program.attached_visits} visits in "
        f"{program.attached_window_days} days. Categories by visits in "
        f"{program.category_window_days} days: one_time 1, occasional "
        f"{program.occasional_from_visits}-{program.regular_from_visits - 1}, regular "
        f"{program.regular_from_visits}+.",
        "",
    ]
    churn = program.churn
    params = churn.params
    lines.append(
        f"Churn: BG/NBD with r={params.r}, alpha={params.alpha}, a={params.a}, b={params.b} "
        f"(time in {churn.unit}). Risk score = 1 - P(alive) + warning signs "
        f"(detractor +{churn.weights.detractor}, overdue complaint "
        f"+{churn.weights.overdue_complaint}, falling average check "
        f"+{churn.weights.falling_average_check}, gap beyond "
        f"{churn.weights.gap_cadence_factor}x cadence +{churn.weights.gap_beyond_cadence})."
    )
    lines.append(f"  {churn.levels.base:<10} the calm base level")
    for level in churn.levels.above:
        lines.append(
            f"  {level.name:<10} entered at score {level.raise_at}, left below {level.clear_below}"
        )
    return "\n".join(lines)
