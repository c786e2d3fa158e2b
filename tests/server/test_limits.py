"""The scope id grammar, the bounds on free-form input and the error bodies: pure, no server."""

from __future__ import annotations

import logging
import string
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mem0.memory.main import _validate_and_trim_entity_id
from pydantic import BaseModel, ValidationError

from memory_operator.server import limits
from memory_operator.server.app import validation_errors
from memory_operator.server.auth import presented_key
from memory_operator.server.main import NoQueryStrings
from memory_operator.server.scope_id import SCOPE_ID_MAX_LENGTH, ScopeId, check_scope_id, is_scope_id
from memory_operator.server.store import InvalidRequest, Scope

VALID_IDS = ["alice", "u-1", "alice@example.com", "auth0|5f1c", "urn:user:7", "_system", "A.B+c", "x" * 253]
INVALID_IDS = [
    "",
    "*",
    " alice",
    "alice ",
    "\x1calice",  # str.strip removes it (mem0 does), yet it is not Unicode whitespace
    "alice\n",
    "al ice",
    "al\tice",
    ".alice",
    "-alice",
    "a/b",
    "alice\u00e9",
    "\uff41lice",  # fullwidth a
    "x" * 254,
    "a\x00",
]


class ScopeIdBody(BaseModel):
    user_id: ScopeId


def accepted_by_model(value: str) -> bool:
    try:
        ScopeIdBody(user_id=value)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("value", VALID_IDS)
def test_valid_scope_ids(value: str) -> None:
    assert is_scope_id(value) and accepted_by_model(value)
    assert check_scope_id("user_id", value) == value
    assert Scope(user_id=value).as_filters() == {"user_id": value}


@pytest.mark.parametrize("value", INVALID_IDS)
def test_invalid_scope_ids_are_refused_naming_the_field(value: str) -> None:
    assert not is_scope_id(value) and not accepted_by_model(value)
    with pytest.raises(InvalidRequest) as refused:
        Scope(agent_id=value)
    assert refused.value.loc == ("agent_id",)
    assert "agent_id" in str(refused.value)
    if len(value) > 3:
        assert value not in str(refused.value), "the value is never repeated back"


# Anything a client could send: printable ASCII, whitespace and control characters, other scripts.
any_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(string.printable + "\x1c\x1d\x1e\x1f\x85\xa0\u2028\u3000*"),
        st.characters(codec="utf-8"),
    ),
    max_size=40,
)


@given(any_text)
def test_one_grammar_at_every_edge(value: str) -> None:
    """The body/query pattern (pydantic) and the path check (Python) accept exactly the same ids."""
    assert accepted_by_model(value) == is_scope_id(value)


@given(any_text)
def test_mem0_takes_every_valid_id_literally(value: str) -> None:
    """No normalisation below the server: mem0 returns a valid id unchanged, and it is no pattern."""
    if is_scope_id(value):
        assert _validate_and_trim_entity_id(value, "user_id") == value
        assert value != "*"
        assert len(value) <= SCOPE_ID_MAX_LENGTH


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


def test_metadata_bounds() -> None:
    assert limits.bounded_json(nested(limits.METADATA_MAX_DEPTH)) == nested(limits.METADATA_MAX_DEPTH)
    for refused in [
        nested(limits.METADATA_MAX_DEPTH + 1),
        nested(100_000),  # deeper than Python's recursion limit: the walk does not recurse
        {"k": list(range(limits.METADATA_MAX_ITEMS + 1))},
        {f"k{n}": n for n in range(limits.METADATA_MAX_ITEMS + 1)},
        {"x" * (limits.KEY_MAX_CHARS + 1): 1},
        {"": 1},
        {"k": "lone \ud800 surrogate"},
        {"\udfff": 1},
    ]:
        with pytest.raises(ValueError):
            limits.bounded_json(refused)


@pytest.mark.parametrize(
    "filters",
    [
        {"type": "incident"},
        {"priority": {"gte": 2, "lte": 5}},
        {"type": ["a", "b"]},
        {"type": "*"},
        {"OR": [{"type": "a"}, {"AND": [{"p": {"gt": 1}}, {"NOT": [{"q": {"in": [1, 2]}}]}]}]},
        {"created_at": {"gte": "2026-01-01T00:00:00+00:00"}},
        {"text": {"icontains": "x"}},
    ],
)
def test_well_formed_filters(filters: dict[str, Any]) -> None:
    assert limits.search_filters(filters) == filters


@pytest.mark.parametrize(
    "filters",
    [
        {"OR": [1, 2]},
        {"AND": "x"},
        {"NOT": []},
        {"OR": [["a"]]},
        {"OR": [{"OR": [{"OR": [{"OR": [{"a": 1}]}]}]}]},
        {"user_id": "alice"},
        {"OR": [{"run_id": {"in": ["r"]}}]},
        {"$or": [{"a": 1}]},
        {"a": {"near": 1}},
        {"a": {}},
        {"a": None},
        {"a": {"in": []}},
        {"a": {"in": list(range(limits.FILTER_MAX_LIST + 1))}},
        {"a": {"eq": {"nested": 1}}},
        {"a": {"contains": 3}},
        {"a": "\ud800"},
        {f"k{n}": n for n in range(limits.FILTER_MAX_CONDITIONS + 1)},
        {"OR": [{"a": 1}] * (limits.FILTER_MAX_CONDITIONS + 1)},
    ],
)
def test_malformed_or_oversized_filters(filters: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        limits.search_filters(filters)


def test_filters_deeper_than_the_recursion_limit() -> None:
    filters: dict[str, Any] = {"a": 1}
    for _ in range(100_000):
        filters = {"OR": [filters]}
    with pytest.raises(ValueError, match="levels"):
        limits.search_filters(filters)


def test_validation_errors_never_echo_the_input() -> None:
    huge = "\ud800" + "x" * 100_000
    errors = [{"loc": ("body", huge), "msg": "bad " + huge, "type": "string_too_long", "input": huge}] * 50
    shown = validation_errors(errors)
    assert len(shown) == 20
    assert all(set(e) == {"loc", "msg", "type"} for e in shown)
    assert len(str(shown)) < 10_000
    assert "\ud800" not in str(shown)
    str(shown).encode("utf-8")


def test_one_credential_or_none() -> None:
    """Bearer, Token (mem0's MemoryClient) and X-API-Key (mem0's server): one credential, one way."""
    assert presented_key([(b"authorization", b"Bearer k")]) == "k"
    assert presented_key([(b"Authorization", b"Token k")]) == "k"
    assert presented_key([(b"x-api-key", b"k")]) == "k"
    assert presented_key([(b"X-API-Key", b" k ")]) == "k"
    assert presented_key([]) is None
    assert presented_key([(b"authorization", b"Basic k")]) is None
    assert presented_key([(b"authorization", b"Bearer ")]) is None
    assert presented_key([(b"x-api-key", b"")]) is None
    twice = [(b"authorization", b"Bearer k"), (b"authorization", b"Bearer k")]
    assert presented_key(twice) is None
    assert presented_key([(b"authorization", b"Bearer k"), (b"authorization", b"")]) is None
    assert presented_key([(b"authorization", b"Bearer k"), (b"x-api-key", b"k")]) is None, "two ways: refused"
    assert presented_key([(b"x-api-key", b"k"), (b"x-api-key", b"k")]) is None


def test_access_log_drops_query_strings() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/api/v1/memories/?user_id=a&api_key=secret", "1.1", 200),
        None,
    )
    assert NoQueryStrings().filter(record)
    assert "secret" not in record.getMessage()
    assert record.getMessage() == '127.0.0.1:5 - "GET /api/v1/memories/ HTTP/1.1" 200'
