"""The fold: one customer's state through their events and through time.

    apply(state, event, program)  -> (state, outputs)   an input event
    advance(state, now, program)  -> (state, outputs)   what time alone changes, up to `now`
    next_due(state, program)      -> datetime | None     when `advance` could next emit anything

`apply` first advances to the event's time, so the outputs do not depend on how often the shell
calls `advance`: a worker that advances at every due time and a replay that advances only at
the end emit the same events with the same ids, each stamped with the time it was due.

Time-driven outputs happen at *scheduled* times (a complaint becoming overdue, points expiry, a
downgrade warning, a re-qualification) and on *churn days*: P(alive) falls while a customer is
silent, so the risk level can rise at the first midnight (UTC) on which the score reaches the
next level's bound. `next_due` asks `churn.next_risk_change` for that day; the fold, once it
sees the level changed by the horizon, finds the same day by bisection with the fast score,
which keeps the hot path to one or two scores per event. The churn level is assessed as of
every event and every scheduled time (and only then), so the hysteresis sees the same scores
whoever calls `advance` how often.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from operator import itemgetter
from typing import Literal

from streams.core import churn
from streams.core.events import (
    ChurnRiskChanged,
    ComplaintOpened,
    ComplaintResolved,
    InputEvent,
    NpsResponse,
    OutputEvent,
    PointsExpired,
    Purchase,
    Return,
    RewardEarned,
    RuleViolation,
    TierChanged,
    TierDowngradeWarning,
    due_marker,
    from_ms,
    output_event_id,
    to_ms,
)
from streams.core.limits import (
    AVRO_LONG_MAX,
    EARLIEST_EVENT_MS,
    LATEST_EVENT_MS,
    MAX_ID_CHARS,
    MAX_OPEN_COMPLAINTS,
    MAX_RETURNABLE_PURCHASES,
    MAX_REWARDS_PER_PURCHASE,
    event_time_problem,
    id_problem,
)
from streams.core.rules import MS_PER_DAY, MS_PER_HOUR, Program
from streams.core.state import (
    RECENT_IDS,
    CustomerState,
    OpenComplaint,
    PunchCardStamps,
    PurchaseRecord,
    SpendDay,
    StateDraft,
    freeze,
    thaw,
)

Outputs = tuple[OutputEvent, ...]
ScheduledKind = Literal["overdue", "expiry", "warning", "requalification"]
AnyState = CustomerState | StateDraft

_DAY_ORDINAL_OF_EPOCH = date(1970, 1, 1).toordinal()
_SPEND = itemgetter(1)
_EVENT_ID = itemgetter(0)


def day_to_date(day: int) -> date:
    return date.fromordinal(day + _DAY_ORDINAL_OF_EPOCH)


def date_to_day(when: date) -> int:
    return when.toordinal() - _DAY_ORDINAL_OF_EPOCH


# ---- public API -------------------------------------------------------------------------------


def is_duplicate(state: CustomerState, event: InputEvent) -> bool:
    """Whether this customer's state has already applied an event with this id.

    Exact within its memory: the ids of the last `RECENT_IDS` (8) events applied, and the ids of
    the purchases still within the return window. So a redelivered event is recognised if fewer
    than `RECENT_IDS` other events of the customer were applied in between (what a consumer
    restart re-reads, per customer, in practice), and a redelivered purchase always while it
    is returnable. Beyond that memory a return still cannot undo more than its purchase (the
    second copy is a `RuleViolation`), and feedback is idempotent by its own keys (an open
    complaint id is opened once; an NPS answer not newer than the latest leaves the class)."""
    event_id = event.event_id
    if event_id in state.recent_ids:
        return True
    # only a purchase can share an id with a purchase record (same event, same kind)
    return type(event) is Purchase and event_id in map(_EVENT_ID, state.purchases)


def apply(
    state: CustomerState, event: InputEvent, program: Program
) -> tuple[CustomerState, Outputs]:
    """The state after an input event, and the output events it (and the time up to it) caused.
    A duplicate returns the state unchanged and no outputs; a contract violation, or an event
    beyond one of the core's limits (`streams.core.limits`, checked first), raises
    `RuleViolation` and leaves the state as it was."""
    if event.customer_id != state.customer_id:
        raise ValueError(
            f"event {event.event_id} of customer {event.customer_id} "
            f"applied to the state of {state.customer_id}"
        )
    at_ms = to_ms(event.occurred_at)
    if (
        not EARLIEST_EVENT_MS <= at_ms < LATEST_EVENT_MS
        or len(event.event_id) > MAX_ID_CHARS
        or len(event.customer_id) > MAX_ID_CHARS
    ):
        _refuse_time_or_ids(event)
    if is_duplicate(state, event):
        return state, ()
    d = thaw(state)
    outputs: list[OutputEvent] = []
    _advance(d, at_ms, program, outputs)
    _prune(d, at_ms, program)
    if type(event) is Purchase:
        _purchase(d, event, at_ms, program, outputs)
    elif type(event) is Return:
        _return(d, event, at_ms, program, outputs)
    elif type(event) is NpsResponse:
        _nps(d, event, at_ms)
    elif type(event) is ComplaintOpened:
        _complaint_opened(d, event, at_ms, program, outputs)
    elif type(event) is ComplaintResolved:
        _complaint_resolved(d, event)
    else:
        raise TypeError(f"not an input event: {event!r}")
    _assess_churn(d, at_ms, event.event_id, program, outputs)
    recent = d.recent_ids
    d.recent_ids = (
        (*recent[1:], event.event_id) if len(recent) >= RECENT_IDS else (*recent, event.event_id)
    )
    return freeze(d), tuple(outputs)


def _refuse_time_or_ids(event: InputEvent) -> None:
    reason = (
        event_time_problem(event.occurred_at)
        or id_problem("event_id", event.event_id)
        or id_problem("customer_id", event.customer_id)
    )
    if reason is not None:
        raise RuleViolation(event, reason)


def _refuse_long_id(event: InputEvent, field_name: str, value: str) -> None:
    reason = id_problem(field_name, value)
    if reason is not None:
        raise RuleViolation(event, reason)


def _refuse_bad_quantities(event: Purchase | Return) -> None:
    for position, item in enumerate(event.items, start=1):
        if item.quantity < 1:
            raise RuleViolation(event, f"items[{position}].quantity {item.quantity} is below 1")


def advance(state: CustomerState, now: datetime, program: Program) -> tuple[CustomerState, Outputs]:
    """Everything time alone changes up to and including `now`, each output stamped with the
    time it was due. advance(advance(s, t1), t2) equals advance(s, t2) for t1 <= t2, and a
    call with nothing due returns the very same state."""
    now_ms = to_ms(now)
    if not _anything_due(state, now_ms, program):
        return state, ()
    d = thaw(state)
    outputs: list[OutputEvent] = []
    _advance(d, now_ms, program, outputs)
    return freeze(d), tuple(outputs)


def next_due(state: CustomerState, program: Program) -> datetime | None:
    """The earliest event time at which `advance` could emit anything: a complaint becoming
    overdue, points expiry, a downgrade warning or re-qualification, or the next change of the
    churn level if nothing happens. None: nothing will ever happen without a new event."""
    scheduled = _next_scheduled(state, program)
    due_ms = None if scheduled is None else scheduled[0]
    churn_day = _next_churn_day(state, program)
    if churn_day is not None:
        churn_ms = churn_day * MS_PER_DAY
        due_ms = churn_ms if due_ms is None else min(due_ms, churn_ms)
    return None if due_ms is None else from_ms(due_ms)


# ---- time -------------------------------------------------------------------------------------


def _anything_due(state: AnyState, now_ms: int, program: Program) -> bool:
    scheduled = _next_scheduled(state, program)
    if scheduled is not None and scheduled[0] <= now_ms:
        return True
    return _silent_churn_change(state, now_ms // MS_PER_DAY, program) is not None


def _advance(d: StateDraft, now_ms: int, program: Program, outputs: list[OutputEvent]) -> None:
    while True:
        scheduled = _next_scheduled(d, program)
        horizon = now_ms if scheduled is None or scheduled[0] > now_ms else scheduled[0]
        change_day = _silent_churn_change(d, horizon // MS_PER_DAY, program)
        if change_day is not None:
            at_ms = change_day * MS_PER_DAY
            _assess_churn(d, at_ms, due_marker("churn", at_ms), program, outputs)
            continue
        if scheduled is None or scheduled[0] > now_ms:
            return
        due_ms, kind = scheduled
        _fire(d, due_ms, kind, program, outputs)
        _assess_churn(d, due_ms, due_marker(kind, due_ms), program, outputs)


def _next_scheduled(state: AnyState, program: Program) -> tuple[int, ScheduledKind] | None:
    """The earliest scheduled due time and its kind; ties in the order overdue, expiry,
    warning, re-qualification (the order `advance` handles them)."""
    best: tuple[int, ScheduledKind] | None = None
    if state.complaints:
        sla_ms = program.complaint_sla_hours * MS_PER_HOUR
        for complaint in state.complaints:
            if not complaint.overdue:
                due = complaint.opened_ms + sla_ms
                if best is None or due < best[0]:
                    best = (due, "overdue")
    if state.points > 0 and state.last_purchase_ms is not None:
        due = state.last_purchase_ms + program.points_expiry_days * MS_PER_DAY
        if best is None or due < best[0]:
            best = (due, "expiry")
    requalify_ms = state.requalify_ms
    if requalify_ms is not None:
        if state.warned_ms != requalify_ms:
            due = requalify_ms - program.downgrade_warning_days * MS_PER_DAY
            if best is None or due < best[0]:
                best = (due, "warning")
        if best is None or requalify_ms < best[0]:
            best = (requalify_ms, "requalification")
    return best


def _fire(
    d: StateDraft, at_ms: int, kind: ScheduledKind, program: Program, outputs: list[OutputEvent]
) -> None:
    cause = due_marker(kind, at_ms)
    if kind == "overdue":
        sla_ms = program.complaint_sla_hours * MS_PER_HOUR
        d.complaints = tuple(
            c._replace(overdue=True) if not c.overdue and c.opened_ms + sla_ms <= at_ms else c
            for c in d.complaints
        )
    elif kind == "expiry":
        assert d.last_purchase_ms is not None
        outputs.append(
            PointsExpired(
                output_event_id(d.customer_id, "expiry", cause),
                d.customer_id,
                from_ms(at_ms),
                cause,
                program.version,
                points=d.points,
                last_purchase_at=from_ms(d.last_purchase_ms),
            )
        )
        d.points = 0
    else:
        _prune(d, at_ms, program)
        if kind == "warning":
            _warn_of_downgrade(d, at_ms, cause, program, outputs)
        else:
            _requalify(d, at_ms, cause, program, outputs)


# ---- tiers ------------------------------------------------------------------------------------


def rolling_spend(state: AnyState, day: int, program: Program) -> int:
    """Net spend of the visit days within the qualification window ending on `day`: a purchase
    counts while it is less than `qualification_window_days` days old (365 days old: out)."""
    return _window_spend(state.spend_days, day, program)


def _window_spend(spend_days: tuple[SpendDay, ...], day: int, program: Program) -> int:
    start = day - program.qualification_window_days
    if not spend_days:
        return 0
    if spend_days[0].day > start and spend_days[-1].day <= day:
        return sum(map(_SPEND, spend_days))
    return sum(bucket.spend_minor for bucket in spend_days if start < bucket.day <= day)


def _warn_of_downgrade(
    d: StateDraft, at_ms: int, cause: str, program: Program, outputs: list[OutputEvent]
) -> None:
    requalify_ms = d.requalify_ms
    assert requalify_ms is not None
    d.warned_ms = requalify_ms
    # what the window will hold at re-qualification if nothing more is bought
    projected = rolling_spend(d, requalify_ms // MS_PER_DAY, program)
    expected = program.tier_for_spend(projected)
    if expected >= d.tier:
        return
    outputs.append(
        TierDowngradeWarning(
            output_event_id(d.customer_id, "warning", cause),
            d.customer_id,
            from_ms(at_ms),
            cause,
            program.version,
            current_tier=program.tier_names[d.tier],
            expected_tier=program.tier_names[expected],
            downgrade_at=from_ms(requalify_ms),
            rolling_spend_minor=rolling_spend(d, at_ms // MS_PER_DAY, program),
            spend_to_keep_minor=program.tiers[d.tier].threshold_minor - projected,
            currency=program.currency,
        )
    )


def _requalify(
    d: StateDraft, at_ms: int, cause: str, program: Program, outputs: list[OutputEvent]
) -> None:
    spend = rolling_spend(d, at_ms // MS_PER_DAY, program)
    held = min(program.tier_for_spend(spend), d.tier)
    requalify_ms = at_ms + program.requalification_days * MS_PER_DAY if held > 0 else None
    if held < d.tier:
        outputs.append(
            _tier_changed(d, held, "requalification", spend, requalify_ms, at_ms, cause, program)
        )
    d.tier = held
    d.requalify_ms = requalify_ms


def _tier_changed(
    d: StateDraft,
    new_tier: int,
    reason: str,
    spend: int,
    requalify_ms: int | None,
    at_ms: int,
    cause: str,
    program: Program,
) -> TierChanged:
    return TierChanged(
        output_event_id(d.customer_id, "tier", cause),
        d.customer_id,
        from_ms(at_ms),
        cause,
        program.version,
        previous_tier=program.tier_names[d.tier],
        new_tier=program.tier_names[new_tier],
        direction="UP" if new_tier > d.tier else "DOWN",
        reason=reason,
        rolling_spend_minor=spend,
        currency=program.currency,
        requalify_at=None if requalify_ms is None else from_ms(requalify_ms),
    )


# ---- purchases and returns --------------------------------------------------------------------


def _prune(d: StateDraft, at_ms: int, program: Program) -> None:
    """Drops spend buckets older than the longest window and purchases past the return window."""
    spend_days = d.spend_days
    oldest_kept = at_ms // MS_PER_DAY - program.longest_window_days
    if spend_days and spend_days[0].day <= oldest_kept:
        stale = 1  # buckets are sorted by day: the stale ones are a prefix
        while stale < len(spend_days) and spend_days[stale].day <= oldest_kept:
            stale += 1
        d.spend_days = spend_days[stale:]
    purchases = d.purchases
    if purchases:
        # records are kept in arrival order, nearly time order: drop the stale head, and
        # stale records behind a late one at the next chance
        expired_before = at_ms - program.return_window_days * MS_PER_DAY
        stale = 0
        for record in purchases:
            if record.at_ms > expired_before:
                break
            stale += 1
        if stale:
            d.purchases = purchases[stale:]


def _with_spend(
    spend_days: tuple[SpendDay, ...], day: int, spend_minor: int
) -> tuple[tuple[SpendDay, ...], bool]:
    """Buckets with spend added to `day` (kept sorted); True when the day was not a visit yet."""
    if not spend_days or spend_days[-1].day < day:
        return (*spend_days, SpendDay(day, spend_minor)), True
    last = spend_days[-1]
    if last.day == day:
        return (*spend_days[:-1], SpendDay(day, last.spend_minor + spend_minor)), False
    for index, bucket in enumerate(spend_days):
        if bucket.day == day:
            updated = SpendDay(day, bucket.spend_minor + spend_minor)
            return (*spend_days[:index], updated, *spend_days[index + 1 :]), False
        if bucket.day > day:
            inserted = SpendDay(day, spend_minor)
            return (*spend_days[:index], inserted, *spend_days[index:]), True
    raise AssertionError("unreachable: the last bucket is after day")


def _purchase(
    d: StateDraft, event: Purchase, at_ms: int, program: Program, outputs: list[OutputEvent]
) -> None:
    if event.currency != program.currency:
        raise RuleViolation(
            event, f"currency {event.currency} is not the program's {program.currency}"
        )
    spend = event.total_minor
    if spend < 0:
        raise RuleViolation(event, f"total_minor {spend} is negative")
    if event.items:
        _refuse_bad_quantities(event)
    day = at_ms // MS_PER_DAY
    points = program.points_for(spend, d.tier)  # at the rate of the tier the customer paid in
    # checked on the sums the state would hold: they leave the core in Avro longs
    if d.lifetime_spend_minor + spend > AVRO_LONG_MAX:
        raise RuleViolation(
            event,
            f"total_minor {spend} would take the customer's lifetime spend past "
            f"{AVRO_LONG_MAX} (the largest amount the contract carries): check the amount's unit",
        )
    if d.points + points > AVRO_LONG_MAX:
        raise RuleViolation(
            event,
            f"total_minor {spend} would earn {points} points, taking the balance past "
            f"{AVRO_LONG_MAX} (the largest number the contract carries): check the amount's unit",
        )
    d.spend_days, new_day = _with_spend(d.spend_days, day, spend)
    first, last = d.first_visit_day, d.last_visit_day
    if first is None or last is None:
        d.first_visit_day = d.last_visit_day = day
        d.visits = 1
    else:
        # A day outside the kept buckets counts as a new visit unless it is the first or last
        # visit (only a purchase arriving more than a window late could be miscounted).
        if new_day and day != first and day != last:  # noqa: PLR1714 - ints, no tuple
            d.visits += 1
        if day < first:
            d.first_visit_day = day
        if day > last:
            d.last_visit_day = day

    stamps_given: tuple[int, ...] = ()
    if program.punch_cards and event.items:
        given = [0] * len(program.punch_cards)
        for item in event.items:
            for index, card in enumerate(program.punch_cards):
                if item.category == card.category:
                    given[index] += item.quantity
        if any(given):
            stamps_given = tuple(given)
            _stamp(d, stamps_given, event, program, outputs)

    # upgrade at once on the purchase that crosses a threshold
    rolling = _window_spend(d.spend_days, day, program)
    reached = program.tier_for_spend(rolling)
    upgraded_from: int | None = None
    requalify_before = d.requalify_ms
    if reached > d.tier:
        upgraded_from = d.tier
        requalify_ms = at_ms + program.requalification_days * MS_PER_DAY
        outputs.append(
            _tier_changed(
                d, reached, "purchase", rolling, requalify_ms, at_ms, event.event_id, program
            )
        )
        d.tier = reached
        d.requalify_ms = requalify_ms

    purchases = d.purchases
    if len(purchases) >= MAX_RETURNABLE_PURCHASES:
        # the oldest are forgotten: a return of one is refused as an unknown purchase
        purchases = purchases[len(purchases) - MAX_RETURNABLE_PURCHASES + 1 :]
    d.purchases = (
        *purchases,
        PurchaseRecord(
            event.event_id,
            at_ms,
            spend,
            points,
            stamps_given,
            upgraded_from,
            requalify_before if upgraded_from is not None else None,
        ),
    )
    d.points += points
    if d.last_purchase_ms is None or at_ms > d.last_purchase_ms:
        d.last_purchase_ms = at_ms
    d.lifetime_spend_minor += spend
    d.receipts += 1
    checks = d.recent_checks
    d.recent_checks = (
        (*checks[1:], spend) if len(checks) >= program.recent_receipts else (*checks, spend)
    )


def _stamp(
    d: StateDraft,
    given: tuple[int, ...],
    event: Purchase,
    program: Program,
    outputs: list[OutputEvent],
) -> None:
    """Adds the purchase's stamps; a reward for every time a card fills."""
    cards = d.punch_cards or tuple(PunchCardStamps(0, 0) for _ in program.punch_cards)
    # a card fills at every N stamps not yet rewarded: max(0, stamps // N - rewards) times
    earned = sum(
        max(0, (held.stamps + add) // card.stamps - held.rewards)
        for card, held, add in zip(program.punch_cards, cards, given, strict=True)
    )
    if earned > MAX_REWARDS_PER_PURCHASE:
        raise RuleViolation(
            event,
            f"its items would fill punch cards {earned} times, more than the "
            f"{MAX_REWARDS_PER_PURCHASE} one purchase may earn: a bulk sale should not name "
            "the punch card's category on its lines",
        )
    updated = []
    for card, held, add in zip(program.punch_cards, cards, given, strict=True):
        stamps, rewards = held.stamps + add, held.rewards
        while stamps - rewards * card.stamps >= card.stamps:
            rewards += 1
            outputs.append(
                RewardEarned(
                    # the card's reward count makes the id unique for the customer's lifetime
                    output_event_id(
                        d.customer_id, f"punch:{card.category}:{rewards}", event.event_id
                    ),
                    d.customer_id,
                    event.occurred_at,
                    event.event_id,
                    program.version,
                    reward_kind="PUNCH_CARD",
                    punch_card=card.category,
                    complaint_id=None,
                    description=f"{card.stamps} x {card.category} bought: the next one is on us",
                )
            )
        updated.append(PunchCardStamps(stamps, rewards))
    d.punch_cards = tuple(updated)


def _return(
    d: StateDraft, event: Return, at_ms: int, program: Program, outputs: list[OutputEvent]
) -> None:
    if event.currency != program.currency:
        raise RuleViolation(
            event, f"currency {event.currency} is not the program's {program.currency}"
        )
    if len(event.purchase_event_id) > MAX_ID_CHARS:
        _refuse_long_id(event, "purchase_event_id", event.purchase_event_id)
    if event.items:
        _refuse_bad_quantities(event)
    index = -1
    for position, candidate in enumerate(d.purchases):
        if candidate.event_id == event.purchase_event_id:
            index = position
            break
    return_ms = program.return_window_days * MS_PER_DAY
    if index < 0 or d.purchases[index].at_ms + return_ms <= at_ms:
        raise RuleViolation(
            event,
            f"purchase {event.purchase_event_id} is unknown for this customer, past the "
            f"{program.return_window_days}-day return window, or older than the customer's "
            f"last {MAX_RETURNABLE_PURCHASES} purchases",
        )
    record = d.purchases[index]
    left = record.spend_left_minor
    full = event.amount_minor is None
    amount = left if event.amount_minor is None else event.amount_minor
    if amount < 0:
        raise RuleViolation(event, f"amount_minor {amount} is negative")
    if amount > left:
        raise RuleViolation(
            event,
            f"amount_minor {amount} is more than the {left} that remains of purchase "
            f"{record.event_id}",
        )
    if full and left == 0 and record.points_left == 0 and not any(record.stamps_left):
        raise RuleViolation(event, f"purchase {record.event_id} is already fully returned")
    left_after = left - amount
    everything = full or left_after == 0

    # Points and stamps go back in proportion to the spend given back, all of them when nothing
    # of the purchase remains; returned lines, when the POS names them, set the stamps.
    points_left = 0 if everything else record.points_left * left_after // left
    stamps_left = record.stamps_left
    if stamps_left:
        if everything:
            stamps_left = tuple(0 for _ in stamps_left)
        elif event.items:
            returned = [0] * len(stamps_left)
            for item in event.items:
                for position, card in enumerate(program.punch_cards):
                    if item.category == card.category:
                        returned[position] += item.quantity
            stamps_left = tuple(
                max(0, held - back) for held, back in zip(stamps_left, returned, strict=True)
            )
        else:
            stamps_left = tuple(held * left_after // left for held in stamps_left)
        if stamps_left != record.stamps_left:
            d.punch_cards = tuple(
                PunchCardStamps(card.stamps - (before - after), card.rewards)
                for card, before, after in zip(
                    d.punch_cards, record.stamps_left, stamps_left, strict=True
                )
            )
    # points already expired cannot be taken back below zero
    d.points = max(0, d.points - (record.points_left - points_left))
    d.lifetime_spend_minor -= amount
    day = record.at_ms // MS_PER_DAY
    if amount and any(bucket.day == day for bucket in d.spend_days):
        d.spend_days, _ = _with_spend(d.spend_days, day, -amount)
    d.purchases = (
        *d.purchases[:index],
        record._replace(
            spend_left_minor=left_after, points_left=points_left, stamps_left=stamps_left
        ),
        *d.purchases[index + 1 :],
    )

    # an upgrade this purchase caused is undone if the rest of the spend no longer holds it
    if record.upgraded_from is None or d.tier <= record.upgraded_from:
        return
    rolling = rolling_spend(d, at_ms // MS_PER_DAY, program)
    tier = max(record.upgraded_from, min(program.tier_for_spend(rolling), d.tier))
    if tier >= d.tier:
        return
    requalify_ms = d.requalify_ms
    if tier == record.upgraded_from:
        # back to the tier held before, on its own schedule; a re-qualification or warning
        # moment that passed meanwhile happens now rather than in the past
        requalify_ms = record.requalify_before_ms
        if requalify_ms is not None:
            requalify_ms = max(requalify_ms, at_ms)
            if requalify_ms - program.downgrade_warning_days * MS_PER_DAY <= at_ms:
                d.warned_ms = requalify_ms
    outputs.append(
        _tier_changed(d, tier, "return", rolling, requalify_ms, at_ms, event.event_id, program)
    )
    d.tier = tier
    d.requalify_ms = requalify_ms


# ---- feedback ---------------------------------------------------------------------------------


def _nps(d: StateDraft, event: NpsResponse, at_ms: int) -> None:
    if not 0 <= event.score <= 10:
        raise RuleViolation(event, f"score {event.score} is not within 0..10")
    # the latest answer by event time sets the class; an older one arriving late does not
    if d.nps_ms is None or at_ms >= d.nps_ms:
        d.nps_score = event.score
        d.nps_ms = at_ms


def _complaint_opened(
    d: StateDraft,
    event: ComplaintOpened,
    at_ms: int,
    program: Program,
    outputs: list[OutputEvent],
) -> None:
    if any(c.complaint_id == event.complaint_id for c in d.complaints):
        return
    if len(event.complaint_id) > MAX_ID_CHARS:
        _refuse_long_id(event, "complaint_id", event.complaint_id)
    if len(d.complaints) >= MAX_OPEN_COMPLAINTS:
        raise RuleViolation(
            event,
            f"the customer already has {len(d.complaints)} open complaints, the most one "
            f"customer may have: resolve some (complaint_resolved) before opening "
            f"{event.complaint_id}",
        )
    d.complaints = (*d.complaints, OpenComplaint(event.complaint_id, at_ms, False))
    if d.tier < program.service_recovery_rank:
        return
    # paid-attention tiers get service recovery at once: speed is what counts
    outputs.append(
        RewardEarned(
            output_event_id(d.customer_id, f"recovery:{event.complaint_id}", event.event_id),
            d.customer_id,
            event.occurred_at,
            event.event_id,
            program.version,
            reward_kind="SERVICE_RECOVERY",
            punch_card=None,
            complaint_id=event.complaint_id,
            description=(
                f"service recovery for complaint {event.complaint_id} "
                f"of a {program.tier_names[d.tier]} customer"
            ),
        )
    )


def _complaint_resolved(d: StateDraft, event: ComplaintResolved) -> None:
    # A resolution of a complaint never seen opened (opened before the processor started, or
    # resolved twice) changes nothing: there is nothing left to track.
    if d.complaints:
        d.complaints = tuple(c for c in d.complaints if c.complaint_id != event.complaint_id)


# ---- churn ------------------------------------------------------------------------------------


def visit_history(state: AnyState) -> churn.VisitHistory | None:
    if state.first_visit_day is None or state.last_visit_day is None:
        return None
    return churn.VisitHistory(
        state.visits, day_to_date(state.first_visit_day), day_to_date(state.last_visit_day)
    )


def _falling_check(state: AnyState, program: Program) -> bool:
    recent = state.recent_checks
    if len(recent) < program.recent_receipts or state.receipts < 2 * len(recent):
        return False
    return churn.is_average_check_falling(
        sum(recent) / len(recent),
        state.lifetime_spend_minor / state.receipts,
        program.churn.weights,
    )


def risk_signals(state: AnyState, program: Program) -> churn.RiskSignals:
    """The warning signs besides P(alive) that the state knows."""
    return churn.RiskSignals(
        detractor=state.nps_score is not None and state.nps_score <= program.detractor_up_to_score,
        overdue_complaint=any(c.overdue for c in state.complaints),
        falling_average_check=_falling_check(state, program),
    )


def risk_on(state: AnyState, day: int, program: Program) -> churn.RiskScore:
    """The churn risk score and reasons as of a calendar day (never before the last visit)."""
    if state.last_visit_day is not None and day < state.last_visit_day:
        day = state.last_visit_day
    return churn.risk_score(
        visit_history(state), risk_signals(state, program), day_to_date(day), program.churn
    )


def risk_score_on(state: AnyState, day: int, program: Program) -> float:
    """`risk_on(...).score` without building dates and histories: the same arithmetic as
    churn.risk_score, operation for operation, so the float is identical (a test holds them
    together). The fold asks this once to a dozen times per event, so churn.p_alive and the
    falling-check sign are written out here rather than called (measured with the cheaper
    `state.freeze`: 7% fewer instructions in the fold)."""
    model = program.churn
    weights = model.weights
    first, last = state.first_visit_day, state.last_visit_day
    alive = 1.0
    repeat = state.visits - 1
    if first is not None and last is not None:
        if day < last:  # noqa: PLR1730 - a branch is cheaper than max() on the hot path
            day = last
        if repeat > 0:
            # churn.p_alive(repeat, t_x, big_t, model.params), expression for expression
            if model.unit == "days":
                t_x: float = last - first
                big_t: float = day - first
            else:
                per_unit = churn.DAYS_PER_UNIT[model.unit]
                t_x, big_t = (last - first) / per_unit, (day - first) / per_unit
            if not (0 <= t_x <= big_t and math.isfinite(big_t)):
                churn.p_alive(repeat, t_x, big_t, model.params)  # raises its ValueError
            params = model.params
            growth = math.log1p((big_t - t_x) / (params.alpha + t_x))
            log_odds = (
                (params.r + repeat) * growth + math.log(params.a) - math.log(params.b + repeat - 1)
            )
            alive = math.exp(-log_odds) if log_odds > 700 else 1.0 / (1.0 + math.exp(log_odds))
    score = 1.0 - alive
    nps = state.nps_score
    if nps is not None and nps <= program.detractor_up_to_score:
        score += weights.detractor
    if state.complaints and any(c.overdue for c in state.complaints):
        score += weights.overdue_complaint
    recent = state.recent_checks  # _falling_check, written out
    held = len(recent)
    if held >= program.recent_receipts and state.receipts >= 2 * held:
        lifetime_average = state.lifetime_spend_minor / state.receipts
        if lifetime_average > 0 and (
            sum(recent) / held < weights.falling_check_ratio * lifetime_average
        ):
            score += weights.falling_average_check
    if first is not None and last is not None and repeat >= weights.gap_min_repeat_visits:
        mean_gap_days = (last - first) / repeat
        if day >= last + math.floor(weights.gap_cadence_factor * mean_gap_days) + 1:
            score += weights.gap_beyond_cadence
    return min(1.0, score)


def _level_holds(state: AnyState, score: float, program: Program) -> bool:
    low, high = program.churn_level_holds[state.churn_level]
    return low <= score < high


def _assess_churn(
    d: StateDraft, at_ms: int, cause: str, program: Program, outputs: list[OutputEvent]
) -> None:
    """Re-assesses the churn level as of the day of at_ms; an event when it changes."""
    day = at_ms // MS_PER_DAY
    if d.churn_day is None or day > d.churn_day:
        d.churn_day = day
    if _level_holds(d, risk_score_on(d, day, program), program):
        return
    risk = risk_on(d, day, program)
    names = program.churn_level_names
    current = names[d.churn_level]
    level = churn.next_level(current, risk.score, program.churn.levels)
    if level == current:
        return
    outputs.append(
        ChurnRiskChanged(
            output_event_id(d.customer_id, "churn", cause),
            d.customer_id,
            from_ms(at_ms),
            cause,
            program.version,
            level=level,
            previous_level=current,
            p_alive=risk.p_alive,
            reasons=risk.reasons,
        )
    )
    d.churn_level = names.index(level)


def _silent_churn_change(state: AnyState, horizon_day: int, program: Program) -> int | None:
    """The first day after the last assessment, up to the horizon, on which silence alone
    changes the churn level; None if the level holds through the horizon."""
    if state.churn_day is None or horizon_day <= state.churn_day or state.visits == 0:
        return None
    if _level_holds(state, risk_score_on(state, horizon_day, program), program):
        return None
    # The same day churn.next_risk_change finds (next_due asks it), from the closed-form guess
    # or by bisection with the fast score: in silence the score only rises, so once the level
    # holds on a day it holds on every earlier one after the assessment, and fails on every
    # later one once it fails.
    low = state.churn_day + 1
    if low == horizon_day or not _level_holds(state, risk_score_on(state, low, program), program):
        return low
    guess = _guess_churn_day(state, program)
    if (
        guess is not None
        and low < guess <= horizon_day
        and not _level_holds(state, risk_score_on(state, guess, program), program)
        and _level_holds(state, risk_score_on(state, guess - 1, program), program)
    ):
        return guess
    high = horizon_day  # holds on low, fails on high
    while high - low > 1:
        middle = (low + high) // 2
        if _level_holds(state, risk_score_on(state, middle, program), program):
            low = middle
        else:
            high = middle
    return high


def _next_churn_day(state: AnyState, program: Program) -> int | None:
    """The first day after the last assessment on which silence alone changes the churn level,
    or None: `churn.next_risk_change`'s answer. A closed-form guess checked with the fast score
    on the day and the day before answers most calls in three scores; when the check fails,
    the churn module's solver answers."""
    if state.churn_day is None:
        return None
    start = state.churn_day + 1
    if state.last_visit_day is not None and start < state.last_visit_day:
        start = state.last_visit_day
    if not _level_holds(state, risk_score_on(state, start, program), program):
        return start
    if state.first_visit_day is None or state.churn_level == len(program.churn_level_names) - 1:
        return None  # no visit: nothing grows with time; the top level: nothing above
    guess = _guess_churn_day(state, program)
    if (
        guess is not None
        and start < guess < start + churn.HORIZON_DAYS
        and not _level_holds(state, risk_score_on(state, guess, program), program)
        and _level_holds(state, risk_score_on(state, guess - 1, program), program)
    ):
        return guess
    history = visit_history(state)
    assert history is not None
    found = churn.next_risk_change(
        program.churn_level_names[state.churn_level],
        history,
        risk_signals(state, program),
        day_to_date(start),
        program.churn,
    )
    return None if found is None else date_to_day(found)


def _guess_churn_day(state: AnyState, program: Program) -> int | None:
    """Where the score reaches the next level's raise bound by the closed form of P(alive):
    P < bound when (r + x) log1p((T - t_x) / (alpha + t_x)) > logit(1 - bound) - log(a / (b +
    x - 1)); once without the gap sign and once with it, from the day the gap sign starts."""
    first, last = state.first_visit_day, state.last_visit_day
    repeat = state.visits - 1
    if first is None or last is None or repeat < 1:
        return None
    model = program.churn
    weights, params = model.weights, model.params
    nps = state.nps_score
    fixed = 0.0  # the signs that do not change while the customer is silent
    if nps is not None and nps <= program.detractor_up_to_score:
        fixed += weights.detractor
    if any(c.overdue for c in state.complaints):
        fixed += weights.overdue_complaint
    if _falling_check(state, program):
        fixed += weights.falling_average_check
    raise_at = program.churn_level_holds[state.churn_level][1]
    per_unit = churn.DAYS_PER_UNIT[model.unit]
    t_x = (last - first) / per_unit

    def first_day_below(bound: float) -> int | None:
        if bound >= 1:
            return last
        if bound <= 0:
            return None
        target = math.log1p(-bound) - math.log(bound)
        growth = (target - math.log(params.a) + math.log(params.b + repeat - 1)) / (
            params.r + repeat
        )
        if growth > 700:
            return None
        big_t = t_x + (params.alpha + t_x) * math.expm1(growth)
        return first + math.floor(big_t * per_unit) + 1

    bound = 1.0 - raise_at + fixed
    guesses = [day for day in (first_day_below(bound),) if day is not None]
    if repeat >= weights.gap_min_repeat_visits:
        mean_gap_days = (last - first) / repeat
        gap_day = last + math.floor(weights.gap_cadence_factor * mean_gap_days) + 1
        with_gap = first_day_below(bound + weights.gap_beyond_cadence)
        if with_gap is not None:
            guesses.append(max(gap_day, with_gap))
    return min(guesses) if guesses else None
