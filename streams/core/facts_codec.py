"""A customer's `Facts` as integers, and a fingerprint of the rules they
were taken under.

The worker stores them in each customer's header next to the due time (see
`streams.worker.envelope`), so that after a restart it counts its customers into the
program's tallies and schedules their time-driven work from the headers alone, without
decoding a single state: decoding every state was most of a restart's time
(bench/results/recovery-local-100k-profiled.txt). Facts and due times depend on the rules,
so they are trusted only while the fingerprint stored with them is that of the rules
running; after a rules change they are worked out from the state again.

Names (tiers, churn levels, stages, loyalty types, NPS classes) are stored as their index in
the program's or the classification's fixed order, two to a byte where they fit; counts as
they are (points and net spend may be negative)."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence

from streams.core.rules import Program
from streams.core.tally import Facts, Tally

# every value `customer.classify` gives, in a fixed order: an index is what gets stored
STAGES = ("prospect", "first_purchase", "repeat", "attached", "loyal")
LOYALTY_TYPES = ("unknown", "none", "spurious", "latent", "true")
NPS_CLASSES = (None, "promoter", "passive", "detractor")
FIELDS = 9  # integers per customer's facts

# The code behind stored facts and due times (`facts_of`, `customer.classify`, `next_due` and
# this encoding). Bump it when they give other answers for the same state and rules: headers
# written before then are then worked out again, not trusted. tests/core/test_facts_codec.py
# keeps a digest of their answers over simulated customers, which fails until you do.
CODE_VERSION = 1


def rules_fingerprint(program: Program) -> int:
    """1 .. 2**32 from everything the program holds (its repr: every number the rules file
    may set) and the code's version; never 0, which stores "no facts"."""
    named = f"{CODE_VERSION}:{program!r}"
    digest = hashlib.blake2b(named.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % 0xFFFFFFFF + 1


class FactsCodec:
    """Facts to integers and back under one program."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self.rules = rules_fingerprint(program)
        self._tiers = program.tier_names
        self._churn_levels = program.churn_level_names
        self._tier_index = {name: index for index, name in enumerate(self._tiers)}
        self._churn_index = {name: index for index, name in enumerate(self._churn_levels)}
        self._stage_index = {name: index for index, name in enumerate(STAGES)}
        self._loyalty_index = {name: index for index, name in enumerate(LOYALTY_TYPES)}
        self._nps_index = {name: index for index, name in enumerate(NPS_CLASSES)}

    def encode(self, facts: Facts) -> tuple[int, ...]:
        flags = facts.visited | facts.repeat << 1
        return (
            self._tier_index[facts.tier],
            self._stage_index[facts.stage] << 3 | self._loyalty_index[facts.loyalty_type],
            self._churn_index[facts.churn_level] << 2 | self._nps_index[facts.nps_class],
            flags,
            facts.open_complaints,
            facts.overdue_complaints,
            facts.points,
            facts.net_spend_minor,
            facts.receipts,
        )

    def decode(self, values: Sequence[int]) -> Facts:
        """The facts `encode` gave `values` for; ValueError if they cannot be this program's."""
        if len(values) != FIELDS:
            raise ValueError(f"{len(values)} fact fields, not {FIELDS}")
        tier, stage_loyalty, churn_nps, flags, *counts = values
        try:
            return Facts(
                tier=self._tiers[tier],
                stage=STAGES[stage_loyalty >> 3],
                loyalty_type=LOYALTY_TYPES[stage_loyalty & 0b111],
                churn_level=self._churn_levels[churn_nps >> 2],
                nps_class=NPS_CLASSES[churn_nps & 0b11],
                visited=bool(flags & 1),
                repeat=bool(flags & 2),
                open_complaints=counts[0],
                overdue_complaints=counts[1],
                points=counts[2],
                net_spend_minor=counts[3],
                receipts=counts[4],
            )
        except IndexError as error:
            raise ValueError(f"fact fields {tuple(values)} are not of these rules") from error


class StoredFactsSum:
    """Many customers' stored facts counted as one `Tally` without decoding each customer's:
    the classes (the first six integers: names, flags, complaints) are counted as they are and
    decoded once per distinct combination, the amounts summed. For a restart's scan, where a
    `Facts` built and counted per customer was half its remaining time."""

    def __init__(self, codec: FactsCodec) -> None:
        self._codec = codec
        self._classes: Counter[tuple[int, ...]] = Counter()
        self._points = self._net_spend_minor = self._receipts = 0

    def add(self, values: tuple[int, ...]) -> None:
        self._classes[values[:6]] += 1
        self._points += values[6]
        self._net_spend_minor += values[7]
        self._receipts += values[8]

    def tally(self) -> Tally:
        total = Tally()
        for classes, customers in self._classes.items():
            total.count(self._codec.decode((*classes, 0, 0, 0)), customers)
        total.points += self._points
        total.net_spend_minor += self._net_spend_minor
        total.receipts += self._receipts
        return total
