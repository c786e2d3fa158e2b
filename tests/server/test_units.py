"""Pure parts of the server: config file, expiration defaults, keys, pagination, scopes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pydantic import ValidationError

from memory_operator.server.auth import Access, ApiKeys, Caller, OutsideReach, ScopedKey, authenticate
from memory_operator.server.config import DEFAULT_EXPIRATION, default_expiration_date, load_config
from memory_operator.server.main import load_or_create_key, origins_of
from memory_operator.server.models import page_of
from memory_operator.server.store import (
    EVERYTHING,
    InvalidRequest,
    Reach,
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


def headers(value: str, name: bytes = b"authorization") -> list[tuple[bytes, bytes]]:
    return [(name, value.encode())]


def test_keys_authenticate_callers() -> None:
    keys = ApiKeys("rw-key", "ro-key")
    assert authenticate(headers("Bearer rw-key"), keys) == Caller("read-write", Access.write, EVERYTHING)
    assert authenticate(headers("Token rw-key"), keys) == Caller("read-write", Access.write, EVERYTHING)
    assert authenticate(headers("ro-key", b"x-api-key"), keys) == Caller("read-only", Access.read, EVERYTHING)
    assert authenticate(headers("bearer ro-key"), keys) == Caller("read-only", Access.read, EVERYTHING)
    for refused in ("Bearer rw-ke", "rw-key", "Basic rw-key", "Bearer "):
        assert authenticate(headers(refused), keys) is None, refused
    assert authenticate([], keys) is None
    assert authenticate(headers("Bearer ro-key"), ApiKeys("rw-key")) is None


def test_a_key_acts_within_its_reach() -> None:
    """The one check of what a key may touch: a scope inside its reach, or (no scope) the reach."""
    alice = Scope(user_id="alice")
    everyone = Caller("read-write", Access.write)
    assert everyone.within(alice) == alice and everyone.within(None) == EVERYTHING
    scoped = ScopedKey("alice-app", "k", Access.read, Reach((alice,)))
    caller = authenticate(headers("Bearer k"), ApiKeys("rw-key", scoped_keys=(scoped,)))
    assert caller is not None and caller.access is Access.read
    assert caller.within(Scope(user_id="alice", run_id="r")) == Scope(user_id="alice", run_id="r")
    assert caller.within(None) == Reach((alice,))
    with pytest.raises(OutsideReach):
        caller.within(Scope(user_id="bob"))
    with pytest.raises(OutsideReach):
        caller.within(Scope(run_id="r"))
    reach = Reach((alice,))
    assert reach.contains({"user_id": "alice"}) and not reach.contains({"user_id": "bob"})


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


def test_cors_origins_of_the_flag() -> None:
    assert origins_of("") == ()
    assert origins_of("http://localhost:3000, http://localhost:3000,https://ui.example/") == (
        "http://localhost:3000",
        "https://ui.example",
    )
    assert origins_of("*") == ("*",)
    for bad in ("localhost:3000", "http://a.example/path", "ftp://a.example"):
        with pytest.raises(SystemExit):
            origins_of(bad)
