"""Topic names: one place derives all of them from the prefix."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.broker.topics import MAX_TOPIC_NAME, TopicNames
from streams.settings import Settings

LEGAL_TOPIC = re.compile(r"[a-zA-Z0-9._-]{1,249}")


def test_default_names_are_the_published_contract() -> None:
    names = TopicNames()
    assert names.inputs == ("loyalty.purchases.v1", "loyalty.feedback.v1")
    assert names.outputs == (
        "loyalty.tier-changes.v1",
        "loyalty.churn-risk.v1",
        "loyalty.rewards.v1",
    )
    assert names.dead_letter == "loyalty.dead-letter.v1"


def test_names_follow_the_settings_prefix() -> None:
    names = TopicNames.from_settings(Settings.load(topic_prefix="shop-7"))
    assert names.purchases == "shop-7.purchases.v1"
    assert names.churn_risk == "shop-7.churn-risk.v1"


@given(
    st.from_regex(r"[a-zA-Z0-9._-]{1,60}", fullmatch=True).filter(lambda p: p not in {".", ".."})
)
def test_every_legal_prefix_gives_six_distinct_legal_topics(prefix: str) -> None:
    names = TopicNames(prefix)
    assert len(set(names.all)) == 6
    assert set(names.all) == {*names.inputs, *names.outputs, names.dead_letter}
    assert not set(names.inputs) & set(names.outputs)
    for topic in names.all:
        assert LEGAL_TOPIC.fullmatch(topic)
        assert topic.startswith(prefix + ".")


@pytest.mark.parametrize(
    "prefix", ["", "loyalty/eu", "has space", "ümlaut", ".", "x" * MAX_TOPIC_NAME]
)
def test_illegal_prefix_is_refused_with_the_rule(prefix: str) -> None:
    with pytest.raises(ValueError, match="topic prefix"):
        TopicNames(prefix)


def test_names_agree_with_the_contracts_topic_table() -> None:
    # The contract's table says which schemas ride on which topic; the broker room creates
    # the topics. Two tables of one fact must name the same topics, in the same roles.
    from streams.contract.topics import TOPICS

    names = TopicNames("shop-7")
    contract = {topic.name("shop-7"): topic.role for topic in TOPICS}
    assert set(contract) == set(names.all)
    assert {name for name, role in contract.items() if role == "input"} == set(names.inputs)
