"""The rules file's shape: pydantic models that mirror `loyalty-program.toml` key by key.

Every section forbids unknown keys (a typo such as `expiry_day` is an error, not a silent
default), money is in major units of the program currency and is turned into exact minor
units, and rates are `Decimal`s taken from the file's text (a TOML float goes through its
shortest repr, so 1.25 stays 1.25)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from streams.contract.money import MoneyError, minor_unit_exponent, to_minor_units

PositiveDays = Annotated[int, Field(ge=1, le=36_500)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PointsSection(Section):
    per_unit: Annotated[Decimal, Field(ge=0, description="points per 1.00 of net spend")] = Decimal(
        1
    )
    expiry_days: PositiveDays = 365


class TierEntry(Section):
    name: Annotated[str, Field(min_length=1, pattern=r"^\S+$")]
    threshold: Annotated[Decimal, Field(ge=0, description="net spend in major units")]
    discount_percent: Annotated[Decimal, Field(ge=0, le=100)] = Decimal(0)
    multiplier: Annotated[Decimal, Field(ge=0, le=100)] = Decimal(1)


class QualificationSection(Section):
    window_days: PositiveDays = 365
    requalify_days: PositiveDays = 365
    downgrade_warning_days: Annotated[int, Field(ge=0, le=36_500)] = 30

    @model_validator(mode="after")
    def _warning_inside_period(self) -> QualificationSection:
        if self.downgrade_warning_days >= self.requalify_days:
            raise ValueError(
                f"downgrade_warning_days ({self.downgrade_warning_days}) must be shorter than "
                f"requalify_days ({self.requalify_days}): the warning comes before the downgrade"
            )
        return self


class PunchCardEntry(Section):
    category: Annotated[str, Field(min_length=1)]
    stamps: Annotated[int, Field(ge=1, le=1000, description="buy this many, the next is free")]


class ReturnsSection(Section):
    window_days: PositiveDays = 90


class ComplaintsSection(Section):
    sla_hours: Annotated[int, Field(ge=1, le=24 * 365)] = 48
    service_recovery_from_tier: str = "gold"


class StagesSection(Section):
    attached_visits: Annotated[int, Field(ge=1)] = 4
    attached_window_days: PositiveDays = 180


class CategoriesSection(Section):
    window_days: PositiveDays = 365
    occasional_from_visits: Annotated[int, Field(ge=2)] = 2
    regular_from_visits: Annotated[int, Field(ge=3)] = 4

    @model_validator(mode="after")
    def _ordered(self) -> CategoriesSection:
        if self.regular_from_visits <= self.occasional_from_visits:
            raise ValueError(
                f"regular_from_visits ({self.regular_from_visits}) must be more than "
                f"occasional_from_visits ({self.occasional_from_visits})"
            )
        return self


class NpsSection(Section):
    promoter_from: Annotated[int, Field(ge=1, le=10)] = 9
    detractor_up_to: Annotated[int, Field(ge=0, le=9)] = 6

    @model_validator(mode="after")
    def _ordered(self) -> NpsSection:
        if self.detractor_up_to >= self.promoter_from:
            raise ValueError(
                f"detractor_up_to ({self.detractor_up_to}) must be below promoter_from "
                f"({self.promoter_from})"
            )
        return self


class ChurnModelSection(Section):
    """All five keys are required when the section is given: fitted parameters only mean
    something together and in their time unit."""

    r: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    alpha: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    a: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    b: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    unit: Literal["days", "weeks"]


class LevelBounds(Section):
    raise_at: Annotated[float, Field(gt=0, le=1)]
    clear_below: Annotated[float, Field(gt=0, lt=1)]

    @model_validator(mode="after")
    def _hysteresis(self) -> LevelBounds:
        if not self.clear_below < self.raise_at:
            raise ValueError(
                f"clear_below ({self.clear_below}) must be below raise_at ({self.raise_at}): "
                "a level is left only well below where it was entered"
            )
        return self


def _default_levels() -> dict[str, LevelBounds]:
    return {
        "watch": LevelBounds(raise_at=0.5, clear_below=0.4),
        "at_risk": LevelBounds(raise_at=0.7, clear_below=0.6),
        "churned": LevelBounds(raise_at=0.9, clear_below=0.8),
    }


class ChurnLevelsSection(BaseModel):
    """`base = "none"` and one `name = { raise_at, clear_below }` per level above it."""

    model_config = ConfigDict(extra="allow", frozen=True)

    base: Annotated[str, Field(min_length=1)] = "none"

    @model_validator(mode="before")
    @classmethod
    def _levels_are_tables(cls, data: object) -> object:
        if isinstance(data, dict):
            for name, value in data.items():
                if name != "base" and not isinstance(value, dict):
                    raise ValueError(
                        f"{name}: a level is a table {{ raise_at = ..., clear_below = ... }}, "
                        f"got {value!r}"
                    )
        return data

    @property
    def above(self) -> dict[str, LevelBounds]:
        """The levels above the base, calmest first (by raise_at)."""
        raw = self.model_extra or {}
        if not raw:
            return _default_levels()
        levels = {}
        for name, value in raw.items():
            try:
                levels[name] = LevelBounds.model_validate(value)
            except ValidationError as error:
                first = error.errors(include_url=False)[0]
                key = ".".join(str(part) for part in (name, *first["loc"]))
                raise ValueError(f"{key}: {first['msg'].removeprefix('Value error, ')}") from None
        return dict(sorted(levels.items(), key=lambda item: item[1].raise_at))

    @model_validator(mode="after")
    def _valid_levels(self) -> ChurnLevelsSection:
        levels = self.above  # validates every table, naming its key
        previous: tuple[str, LevelBounds] | None = None
        for name, bounds in levels.items():
            if name == self.base:
                raise ValueError(f"{name}: a level above the base cannot share its name")
            if previous is not None and not bounds.clear_below > previous[1].clear_below:
                raise ValueError(
                    f"{name}: clear_below ({bounds.clear_below}) must be above the "
                    f"clear_below of {previous[0]} ({previous[1].clear_below}), "
                    "which is entered at a lower score"
                )
            previous = (name, bounds)
        return self


class ChurnSignalsSection(Section):
    detractor: Annotated[float, Field(ge=0, le=1)] = 0.15
    overdue_complaint: Annotated[float, Field(ge=0, le=1)] = 0.20
    falling_average_check: Annotated[float, Field(ge=0, le=1)] = 0.10
    gap_beyond_cadence: Annotated[float, Field(ge=0, le=1)] = 0.15
    gap_cadence_factor: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 3.0
    gap_min_repeat_visits: Annotated[int, Field(ge=1)] = 2
    low_p_alive_below: Annotated[float, Field(ge=0, le=1)] = 0.5
    falling_check_ratio: Annotated[float, Field(gt=0, le=1)] = 0.7
    recent_receipts: Annotated[int, Field(ge=1, le=50)] = 3


class ChurnSection(Section):
    # DOMAIN.md's published example (weeks); fit your own with `loyalty churn fit`
    model: ChurnModelSection = ChurnModelSection(
        r=0.243, alpha=4.414, a=0.793, b=2.426, unit="weeks"
    )
    levels: ChurnLevelsSection = ChurnLevelsSection()
    signals: ChurnSignalsSection = ChurnSignalsSection()


class ProgramFile(Section):
    """The whole rules file."""

    version: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\s+]+$")]
    currency: str
    points: PointsSection = PointsSection()
    tier: Annotated[list[TierEntry], Field(min_length=1)]
    qualification: QualificationSection = QualificationSection()
    punch_card: list[PunchCardEntry] = Field(default_factory=list)
    returns: ReturnsSection = ReturnsSection()
    complaints: ComplaintsSection = ComplaintsSection()
    stages: StagesSection = StagesSection()
    categories: CategoriesSection = CategoriesSection()
    nps: NpsSection = NpsSection()
    churn: ChurnSection = ChurnSection()

    @field_validator("currency")
    @classmethod
    def _iso_currency(cls, value: str) -> str:
        try:
            minor_unit_exponent(value)
        except MoneyError as error:
            raise ValueError(str(error)) from None
        return value

    @model_validator(mode="after")
    def _tiers(self) -> ProgramFile:
        names: set[str] = set()
        previous: TierEntry | None = None
        for position, entry in enumerate(self.tier, start=1):
            where = f"tier[{position}] ({entry.name})"
            if entry.name in names:
                raise ValueError(f"{where}: the name {entry.name!r} is used twice")
            names.add(entry.name)
            try:
                to_minor_units(entry.threshold, self.currency)
            except MoneyError as error:
                raise ValueError(f"{where}.threshold: {error}") from None
            if previous is None and entry.threshold != 0:
                raise ValueError(
                    f"{where}.threshold: the first tier must have threshold 0 "
                    "(every customer holds it)"
                )
            if previous is not None and not entry.threshold > previous.threshold:
                raise ValueError(
                    f"{where}.threshold: {entry.threshold} must be above the previous tier's "
                    f"{previous.threshold} (tiers go from lowest to highest)"
                )
            previous = entry
        recovery = self.complaints.service_recovery_from_tier
        if recovery not in names:
            raise ValueError(
                f"complaints.service_recovery_from_tier: {recovery!r} is not a tier "
                f"(tiers: {', '.join(t.name for t in self.tier)})"
            )
        categories = [card.category for card in self.punch_card]
        if len(set(categories)) != len(categories):
            raise ValueError("punch_card: one card per category")
        return self
