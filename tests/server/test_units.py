"""Pure parts of the server: config file, expiration defaults, keys, pagination, scopes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pydantic import ValidationError

from memory_operator.server.auth import Access, ApiKeys, access_of
from memory_operator.server.config import DEFAULT_EXPIRATION, default_expiration_date, load_config
from memory_operator.server.main import load_or_create_key
from memory_operator.server.models import page_of
from memory_operator.server.store import (
    InvalidRequest,
    Scope,
    caller_metadata,
    categories_of,
    memory_from_payload,
)

TODAY = dt.date(2026, 1, 10)


@pytest.mark.parametrize(
    ("categories", "expected"),
    [
        ([], None),
        (["unknown"], None),
        (["incident"], dt.date(2026, 4, 10)),
        (["temporary", "incident"], dt.date(2026, 1, 17)),
        (["temporary", "permanent"], None),
    ],
)
def test_default_expiration_date(categories: list[str], expected: dt.date | None) -> None:
    assert default_expiration_date(categories, DEFAULT_EXPIRATION, TODAY) == expected


def test_config_file(tmp_path: Path) -> None:
    path = tmp_path / "server.yaml"
    path.write_text(
        "categories: [incident, {name: runbook, expiration: never}]\n"
        "customInstructions: keep service facts\n"
        "defaultExpiration: {incident: 2w}\n"
    )
    config = load_config(path)
    assert config.custom_instructions == "keep service facts"
    assert config.expirations() == {
        "incident": "2w",
        "temporary": "7d",
        "permanent": "never",
        "runbook": "never",
    }
    assert config.category_names() == ["incident", "runbook", "temporary", "permanent"]
    assert load_config(None).expirations() == DEFAULT_EXPIRATION


def test_config_file_errors_name_the_field(tmp_path: Path) -> None:
    path = tmp_path / "server.yaml"
    path.write_text("defaultExpiration: {incident: 12h}\n")
    with pytest.raises(ValidationError, match=r"defaultExpiration\.incident"):
        load_config(path)


def test_access_of_keys() -> None:
    keys = ApiKeys("rw-key", "ro-key")
    assert access_of("Bearer rw-key", keys) is Access.write
    assert access_of("bearer ro-key", keys) is Access.read
    assert access_of("Bearer rw-ke", keys) is None
    assert access_of("rw-key", keys) is None
    assert access_of("Basic rw-key", keys) is None
    assert access_of("Bearer ", ApiKeys("rw-key")) is None
    assert access_of(None, keys) is None


def test_key_file_is_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "data" / "api-key"
    key = load_or_create_key(path)
    assert len(key) >= 32 and path.stat().st_mode & 0o777 == 0o600
    assert load_or_create_key(path) == key


def test_scope_requires_an_id_and_matches_all() -> None:
    with pytest.raises(InvalidRequest):
        Scope()
    scope = Scope(user_id="a", agent_id="x")
    assert scope.contains({"user_id": "a", "agent_id": "x", "run_id": "r"})
    assert not scope.contains({"user_id": "a"})


def test_metadata_cannot_overwrite_reserved_keys() -> None:
    assert caller_metadata({"user_id": "other", "state": "active", "data": "x", "type": "incident"}) == {
        "type": "incident"
    }
    assert categories_of(["a"], {"categories": ["b", "a", " "]}) == ["a", "b"]
    assert categories_of(None, {"categories": "c"}) == ["c"]


def test_pages_like_openmemory() -> None:
    memories = [memory_from_payload(f"id{n}", {"data": f"m{n}"}) for n in range(5)]
    last = page_of(memories, page=3, size=2)
    assert (last.total, last.pages, last.page, [i.content for i in last.items]) == (5, 3, 3, ["m4"])
    assert page_of([], 1, 10).pages == 0
