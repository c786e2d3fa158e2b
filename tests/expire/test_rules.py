"""The pure filter builder: rules, keep rules and expiration dates as Qdrant filters."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from qdrant_client import models as qm

from memory_operator.api.policy import MemoryPolicySpec, RuleMatch
from memory_operator.expire import rules
from memory_operator.synthetic import CANARY_USER_ID

NOW = dt.datetime(2025, 6, 15, 12, 30, tzinfo=dt.UTC)
# Every deleting rule leaves the canary's reserved scope alone, first of all.
CANARY = qm.FieldCondition(key="user_id", match=qm.MatchValue(value=CANARY_USER_ID))


def spec(**fields: Any) -> MemoryPolicySpec:
    return MemoryPolicySpec.model_validate(fields)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("12h", dt.timedelta(hours=12)), ("90d", dt.timedelta(days=90)), ("2w", dt.timedelta(days=14))],
)
def test_durations(text: str, expected: dt.timedelta) -> None:
    assert rules.parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "d", "0d", "5m", "-1d", "1.5d"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        rules.parse_duration(text)


def test_match_becomes_equality_and_any_conditions() -> None:
    match = RuleMatch.model_validate(
        {"userId": "alice", "runId": "s1", "metadata": {"type": "incident"}, "categories": ["a", "b"]}
    )
    assert rules.match_conditions(match) == [
        qm.FieldCondition(key="user_id", match=qm.MatchValue(value="alice")),
        qm.FieldCondition(key="run_id", match=qm.MatchValue(value="s1")),
        qm.FieldCondition(key="type", match=qm.MatchValue(value="incident")),
        qm.FieldCondition(key="categories", match=qm.MatchAny(any=["a", "b"])),
    ]
    assert rules.match_conditions(RuleMatch()) == []


def test_wildcard_means_the_field_is_set() -> None:
    (condition,) = rules.match_conditions(RuleMatch.model_validate({"runId": "*"}))
    assert condition == qm.Filter(must_not=[qm.IsEmptyCondition(is_empty=qm.PayloadField(key="run_id"))])


def test_max_age_is_a_datetime_range_on_the_age_field() -> None:
    policy = spec(
        rules=[{"name": "old", "maxAge": "90d", "ageField": "created_at"}], honorExpirationDate=False
    )
    (planned,) = rules.plan(policy, NOW)
    assert planned.name == "old"
    assert planned.filter == qm.Filter(
        must=[qm.FieldCondition(key="created_at", range=qm.DatetimeRange(lt=NOW - dt.timedelta(days=90)))],
        must_not=[CANARY],
    )


def test_keep_rules_are_excluded_from_every_deleting_rule() -> None:
    policy = spec(
        rules=[
            {"name": "deps", "match": {"metadata": {"type": "dep"}}, "keep": True},
            {"name": "old", "maxAge": "30d"},
            {"name": "mine", "match": {"userId": "bob"}, "maxAge": "1d"},
        ],
        honorExpirationDate=True,
    )
    planned = rules.plan(policy, NOW)
    assert [p.name for p in planned] == ["old", "mine", rules.EXPIRATION_DATE_RULE]
    keep = qm.Filter(must=[qm.FieldCondition(key="type", match=qm.MatchValue(value="dep"))])
    for rule in planned:
        assert rule.filter.must_not is not None and rule.filter.must_not[:2] == [CANARY, keep]


def test_earlier_rules_claim_their_memories() -> None:
    policy = spec(
        rules=[{"name": "first", "maxAge": "30d"}, {"name": "second", "maxAge": "7d"}],
        honorExpirationDate=True,
    )
    first, second, expiration = rules.plan(policy, NOW)
    assert first.filter.must_not == [CANARY]
    assert second.filter.must_not == [CANARY, qm.Filter(must=first.filter.must)]
    assert expiration.filter.must_not == [
        CANARY,
        qm.Filter(must=first.filter.must),
        qm.Filter(must=second.filter.must),
    ]


def test_expiration_date_before_today_utc() -> None:
    (planned,) = rules.plan(spec(honorExpirationDate=True), dt.datetime(2025, 6, 15, 23, 0, tzinfo=dt.UTC))
    assert planned.filter.must == [
        qm.FieldCondition(
            key="expiration_date", range=qm.DatetimeRange(lt=dt.datetime(2025, 6, 15, tzinfo=dt.UTC))
        )
    ]
    # Late in the evening west of UTC it is already tomorrow in UTC: mem0 judges by the UTC date.
    pacific = dt.timezone(dt.timedelta(hours=-8))
    (planned,) = rules.plan(spec(), dt.datetime(2025, 6, 15, 20, 0, tzinfo=pacific))
    assert planned.filter.must[0].range == qm.DatetimeRange(lt=dt.datetime(2025, 6, 16, tzinfo=dt.UTC))  # type: ignore[index,union-attr]


def test_nothing_to_do_without_rules_or_expiration() -> None:
    assert rules.plan(spec(honorExpirationDate=False), NOW) == []
    assert rules.plan(spec(rules=[{"name": "k", "keep": True}], honorExpirationDate=False), NOW) == []


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError):
        rules.plan(spec(), dt.datetime(2025, 1, 1))


def test_datetime_fields_to_index() -> None:
    policy = spec(
        rules=[
            {"name": "a", "maxAge": "1d"},
            {"name": "b", "maxAge": "1d", "ageField": "created_at"},
            {"name": "k", "keep": True},
        ]
    )
    assert rules.datetime_fields(policy) == ["created_at", "expiration_date", "updated_at"]
    assert rules.datetime_fields(spec(honorExpirationDate=False)) == []


def test_the_expiration_rule_name_cannot_collide_with_a_policy_rule() -> None:
    with pytest.raises(ValueError):
        spec(rules=[{"name": rules.EXPIRATION_DATE_RULE, "maxAge": "1d"}])
