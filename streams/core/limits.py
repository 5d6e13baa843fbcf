"""What the core refuses or forgets so that hostile or broken input cannot crash it, make a
customer's state grow without bound, or store a number the contract cannot carry out again.

Each limit is a `RuleViolation` with a reason a POS team can act on (the worker dead-letters
the event, `loyalty replay` lists it), except `MAX_RETURNABLE_PURCHASES`, which forgets: see
there. Normal traffic is far inside every one of them. The README's "Hostile input" section
lists them with their reasons; `streams.contract.event_files` refuses the same times and ids
when a POS file is read, so `loyalty publish` reports them by line before anything is sent."""

from __future__ import annotations

from datetime import UTC, datetime

# Event time: from the Unix epoch (a POS clock that was never set says 1970-01-01 or earlier)
# up to, not including, the year 9000. Every time the core derives from an event (expiry,
# re-qualification: at most 100 years on, the rules file's limit; a churn change: at most
# churn.HORIZON_DAYS on) stays inside what `datetime` holds (year 9999). Checked first.
EARLIEST_EVENT_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_EVENT_TIME = datetime(9000, 1, 1, tzinfo=UTC)  # exclusive
EARLIEST_EVENT_MS = 0
LATEST_EVENT_MS = 221_845_392_000_000  # LATEST_EVENT_TIME in epoch milliseconds

# Ids (event, customer, purchase and complaint ids) are kept in the state (the duplicate
# memory, returnable purchases, open complaints), so their length bounds its size.
MAX_ID_CHARS = 256

# Money and points leave the core in Avro longs (TierChanged.rolling_spend_minor,
# PointsExpired.points, ...): a sum that would not fit is refused when it would be made,
# not when an output carrying it fails to encode months later.
AVRO_LONG_MAX = 2**63 - 1

# One purchase fills a punch card at most this many times (1000 x the card's N items: a bulk
# sale, not a customer's coffee habit); more is refused rather than sending a flood of rewards.
MAX_REWARDS_PER_PURCHASE = 1000

# Open complaints a customer may have at once; a new one beyond is refused (a resolution, or
# the same complaint id again, is always accepted).
MAX_OPEN_COMPLAINTS = 64

# Returnable purchases remembered per customer (those within the return window). Beyond, the
# oldest is forgotten: a return of it is refused as an unknown purchase, and a resent copy of
# it is recognised as a duplicate only while its id is among the last RECENT_IDS event ids.
MAX_RETURNABLE_PURCHASES = 1000


def event_time_problem(moment: datetime, field_name: str = "occurred_at") -> str | None:
    """Why an event time is refused, or None."""
    if moment < EARLIEST_EVENT_TIME:
        return (
            f"{field_name} {_iso(moment)} is before 1970-01-01: check the POS clock "
            "(an unset clock reads 1970 or earlier)"
        )
    if moment >= LATEST_EVENT_TIME:
        return (
            f"{field_name} {_iso(moment)} is not before 9000-01-01: check the POS clock "
            "and the time's format (milliseconds, not microseconds, since the epoch)"
        )
    return None


def id_problem(field_name: str, value: str) -> str | None:
    """Why an id is refused, or None."""
    if len(value) > MAX_ID_CHARS:
        return (
            f"{field_name} is {len(value)} characters long, more than {MAX_ID_CHARS}: "
            f"send a shorter id (it starts {value[:24]!r})"
        )
    return None


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
