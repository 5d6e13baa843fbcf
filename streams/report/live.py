"""The live report's input: every customer as the running workers hold them, through their
HTTP API (README, "Reading the state"): `GET /customers` pages from each worker (a worker
pages only the partitions it owns, so every worker is asked) at one `as_of` for all, and
`GET /stats` from each, whose counts are added up and checked against the pages.

The lines are `loyalty replay`'s, so the report's figures read them as they read a replay.
What the live state cannot give is history: months, cohorts over time, moves and expiries."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from streams.report.history import customers_frame
from streams.tools.replay import parse_as_of

PAGE_LIMIT = 1000
TIMEOUT_S = 60.0


class LiveReadError(RuntimeError):
    """The workers could not give a complete picture; the message says what to do."""


@dataclass
class LiveState:
    customers: pd.DataFrame
    as_of: datetime
    stats: dict[str, Any]  # the workers' /stats added up
    partitions: list[int]
    workers: list[str]
    mismatches: list[str] = field(default_factory=list)  # /stats vs the pages


def _get(url: str, token: str | None = None) -> dict[str, Any]:
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise LiveReadError(f"{url}: a worker's API is at an http:// or https:// URL")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        request = urllib.request.Request(url, headers=headers)
        # bandit B310 (file:// and custom schemes): the scheme is checked just above
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # nosec B310
            body: dict[str, Any] = json.load(response)
            return body
    except urllib.error.HTTPError as error:
        try:
            message = json.load(error).get("error", str(error))
        except (ValueError, AttributeError):
            message = str(error)
        raise LiveReadError(f"{url}: {error.code} {message}") from None
    except (urllib.error.URLError, OSError) as error:
        raise LiveReadError(
            f"no worker answers at {url} ({error}); start one with `loyalty worker` or give "
            "every worker with --worker"
        ) from None


def _url(base: str, path: str, **query: str) -> str:
    tail = {name: value for name, value in query.items() if value}
    return base.rstrip("/") + path + (f"?{urllib.parse.urlencode(tail)}" if tail else "")


def read_live(
    workers: list[str],
    partitions: int,
    as_of: datetime | None = None,
    progress: Callable[[int], None] | None = None,
    token: str | None = None,
) -> LiveState:
    """Every customer of every partition from the workers' pages, all at one moment (as_of,
    or the first worker's own default), and their /stats summed. `token`: the workers'
    API token (LOYALTY_API_TOKEN), when they require one."""
    moment = None if as_of is None else as_of.isoformat().replace("+00:00", "Z")
    lines: list[dict[str, Any]] = []
    owned: dict[int, str] = {}
    for worker in workers:
        cursor: str | None = None
        while True:
            page = _get(
                _url(
                    worker,
                    "/customers",
                    limit=str(PAGE_LIMIT),
                    cursor=cursor or "",
                    as_of=moment or "",
                ),
                token,
            )
            moment = moment or page["as_of"]
            lines.extend(page["customers"])
            if progress is not None:
                progress(len(page["customers"]))
            for partition in page["partitions"]:
                if partition in owned and owned[partition] != worker:
                    raise LiveReadError(
                        f"partition {partition} is owned by both {owned[partition]} and {worker}: "
                        "the group is rebalancing; retry when `loyalty status` shows it stable"
                    )
                owned[partition] = worker
            cursor = page["next_cursor"]
            if cursor is None:
                break
    missing = sorted(set(range(partitions)) - set(owned))
    if missing:
        raise LiveReadError(
            f"no worker given owns partition(s) {', '.join(map(str, missing))} of {partitions}: "
            "give every worker with --worker (see `loyalty status`), or wait for the group to "
            "finish rebalancing"
        )
    assert moment is not None
    stats = [_get(_url(worker, "/stats", as_of=moment), token) for worker in workers]
    state = LiveState(
        customers=customers_frame(lines),
        as_of=parse_as_of(moment),
        stats=add_stats(stats),
        partitions=sorted(owned),
        workers=list(workers),
    )
    state.mismatches = compare_with_pages(state.stats, state.customers)
    return state


def add_stats(answers: list[dict[str, Any]]) -> dict[str, Any]:
    """The counts of several workers' /stats added up (NPS is recomputed by the figures from
    the pages: a percentage does not add)."""
    total: dict[str, Any] = {"customers": 0, "points_liability": 0, "nps_answers": 0}
    tiers: Counter[str] = Counter()
    levels: Counter[str] = Counter()
    for answer in answers:
        for name in ("customers", "points_liability", "nps_answers"):
            total[name] += answer[name]
        tiers.update(answer["tiers"])
        levels.update(answer["churn_levels"])
    total["tiers"] = dict(tiers)
    total["churn_levels"] = dict(levels)
    return total


def compare_with_pages(stats: dict[str, Any], customers: pd.DataFrame) -> list[str]:
    """What the summed /stats say that the pages do not (they should agree when the workers
    are idle: both are the same states at the same moment)."""
    problems = []
    checks = {
        "customers": len(customers),
        "points_liability": int(customers["points"].sum()),
        "nps_answers": int(customers["nps_score"].notna().sum()),
    }
    for name, from_pages in checks.items():
        if stats[name] != from_pages:
            problems.append(f"{name}: /stats {stats[name]}, pages {from_pages}")
    for name, count in customers["tier"].value_counts().items():
        if stats["tiers"].get(name, 0) != count:
            problems.append(f"tier {name}: /stats {stats['tiers'].get(name, 0)}, pages {count}")
    return problems
