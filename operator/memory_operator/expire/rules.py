"""A MemoryPolicy's retention rules as Qdrant filters over mem0's payload layout (pure).

mem0 stores one point per memory with a flat payload: `user_id`, `agent_id` and `run_id` at the top
level, the caller's metadata merged beside them, `created_at`/`updated_at` as ISO 8601 strings with
an offset and `expiration_date` as `YYYY-MM-DD`; the builtin server adds `state`, `app` and
`categories` (a list). Qdrant's datetime range parses all of these strings, date-only ones as
midnight UTC, so one `DatetimeRange` serves both ages and expiration dates.

Each deleting rule's filter excludes the canary's reserved scope (`memory_operator.synthetic`), what
the keep rules protect and what earlier rules already
claim, so every memory is counted once, by the first rule that deletes it, and a dry run reports
exactly what a real run would delete.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from qdrant_client import models as qm

from memory_operator.api.policy import MemoryPolicySpec, RetentionRule, RuleMatch
from memory_operator.synthetic import synthetic_condition

# The rule that purges memories past their `expiration_date`. Rule names are lowercase DNS labels,
# so this camelCase name can never collide with a rule of the policy.
EXPIRATION_DATE_RULE = "expirationDate"
EXPIRATION_DATE_FIELD = "expiration_date"
CATEGORIES_FIELD = "categories"
SCOPE_FIELDS = ("user_id", "agent_id", "run_id")
# A match value meaning "the field is set, to anything" (mem0's own filter wildcard).
ANY_VALUE = "*"

_UNITS = {"h": dt.timedelta(hours=1), "d": dt.timedelta(days=1), "w": dt.timedelta(weeks=1)}


@dataclass(frozen=True)
class PlannedRule:
    """One deleting rule, ready to run: its name and the filter of the memories it deletes."""

    name: str
    filter: qm.Filter


def parse_duration(text: str) -> dt.timedelta:
    """`90d`, `12h`, `2w` as a timedelta (the API's pattern admits nothing else)."""
    count, unit = text[:-1], text[-1:]
    if unit not in _UNITS or not count.isdigit() or int(count) < 1:
        raise ValueError(f"not a duration: {text!r} (expected a count and h, d or w, e.g. 90d)")
    return int(count) * _UNITS[unit]


def _value_condition(key: str, value: str) -> qm.Condition:
    if value == ANY_VALUE:
        # Set to something: neither missing, null nor an empty list.
        return qm.Filter(must_not=[qm.IsEmptyCondition(is_empty=qm.PayloadField(key=key))])
    return qm.FieldCondition(key=key, match=qm.MatchValue(value=value))


def match_conditions(match: RuleMatch) -> list[qm.Condition]:
    """The conditions a memory meets when `match` selects it (none: every memory)."""
    conditions: list[qm.Condition] = []
    for key in SCOPE_FIELDS:
        value = getattr(match, key)
        if value is not None:
            conditions.append(_value_condition(key, value))
    for key, value in sorted(match.metadata.items()):
        conditions.append(_value_condition(key, value))
    if match.categories:
        conditions.append(
            qm.FieldCondition(key=CATEGORIES_FIELD, match=qm.MatchAny(any=list(match.categories)))
        )
    return conditions


def older_than(field: str, cutoff: dt.datetime) -> qm.FieldCondition:
    """`field` holds a date or timestamp before `cutoff` (memories without it never match)."""
    return qm.FieldCondition(key=field, range=qm.DatetimeRange(lt=cutoff))


def start_of_day(now: dt.datetime) -> dt.datetime:
    """Midnight UTC of `now`'s UTC date: an `expiration_date` before it has passed (as mem0 judges)."""
    today = now.astimezone(dt.UTC).date()
    return dt.datetime(today.year, today.month, today.day, tzinfo=dt.UTC)


def rule_conditions(rule: RetentionRule, now: dt.datetime) -> list[qm.Condition]:
    """What a deleting rule selects, before keep rules and earlier rules are taken out."""
    if rule.max_age is None:
        raise ValueError(f"rule {rule.name} keeps memories; it deletes none")
    return [older_than(rule.age_field, now - parse_duration(rule.max_age)), *match_conditions(rule.match)]


def plan(spec: MemoryPolicySpec, now: dt.datetime) -> list[PlannedRule]:
    """The deleting rules of `spec` in order, then the expiration-date rule, as exclusive filters.

    `now` must be timezone-aware; every cutoff of the run is computed from it once.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    # The canary's synthetic memories are its own to delete: no rule ever touches them.
    protected: list[qm.Condition] = [
        synthetic_condition(),
        *(qm.Filter(must=match_conditions(rule.match)) for rule in spec.rules if rule.keep),
    ]
    selections: list[tuple[str, list[qm.Condition]]] = [
        (rule.name, rule_conditions(rule, now)) for rule in spec.rules if not rule.keep
    ]
    if spec.honor_expiration_date:
        selections.append((EXPIRATION_DATE_RULE, [older_than(EXPIRATION_DATE_FIELD, start_of_day(now))]))
    planned: list[PlannedRule] = []
    claimed: list[qm.Condition] = []
    for name, conditions in selections:
        planned.append(PlannedRule(name, qm.Filter(must=conditions, must_not=[*protected, *claimed])))
        claimed.append(qm.Filter(must=conditions))
    return planned


def datetime_fields(spec: MemoryPolicySpec) -> list[str]:
    """Payload fields the plan compares as datetimes, which a `datetime` index speeds up."""
    fields = {rule.age_field for rule in spec.rules if not rule.keep}
    if spec.honor_expiration_date:
        fields.add(EXPIRATION_DATE_FIELD)
    return sorted(fields)
