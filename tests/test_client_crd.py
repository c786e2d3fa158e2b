"""The MemoryClient CRD refuses what its model refuses; scope entries are the operator's to judge (a
condition and an Event name the entry at fault, which the API server's pattern message would not)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from memory_operator.api import MemoryClient
from test_crds import api_server_errors


def client(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "memory-operator.io/v1alpha1",
        "kind": "MemoryClient",
        "metadata": {"name": "app", "namespace": "agents"},
        "spec": spec,
    }


INVALID = [
    ("no-store", client({}), "'store' is a required property"),
    ("bad-access", client({"store": "s", "access": "admin"}), "is not one of"),
    ("burst-alone", client({"store": "s", "quota": {"burst": 5}}), "burst needs requestsPerSecond"),
    (
        "write-burst-alone",
        client({"store": "s", "quota": {"writeBurst": 5}}),
        "writeBurst needs writesPerSecond",
    ),
    ("zero-rate", client({"store": "s", "quota": {"requestsPerSecond": 0}}), "less than the minimum"),
    ("empty-entry", client({"store": "s", "scopes": {"userIds": [""]}}), "should be non-empty"),
    ("unknown-field", client({"store": "s", "scope": {}}), "'scope' was unexpected"),
]


@pytest.mark.parametrize(("obj", "expected"), [(o, e) for _, o, e in INVALID], ids=[i for i, _, _ in INVALID])
def test_invalid_clients_are_refused(obj: dict[str, Any], expected: str) -> None:
    errors = api_server_errors(obj)
    assert any(expected in error for error in errors), errors
    with pytest.raises(ValidationError):
        MemoryClient.model_validate(obj)


def test_defaults_are_read_only_and_reach_nothing() -> None:
    obj = client({"store": "s"})
    assert api_server_errors(obj) == []
    spec = MemoryClient.model_validate(obj).spec
    assert spec.access == "readOnly"
    assert spec.scopes.empty_fields() == ["userIds", "agentIds", "runIds"]
    assert spec.quota.request_burst() is None


def test_bad_scope_entries_pass_the_api_server_for_the_operator_to_report() -> None:
    obj = client({"store": "s", "scopes": {"userIds": ["a b", "*", "x"]}})
    assert api_server_errors(obj) == []
    problems = MemoryClient.model_validate(obj).spec.scopes.problems()
    assert [p.split(":")[0] for p in problems] == ["userIds[0]", "userIds"]


def test_bursts_default_to_the_rate_rounded_up() -> None:
    quota = MemoryClient.model_validate(
        client({"store": "s", "quota": {"requestsPerSecond": 2.5, "writesPerSecond": 0.2}})
    ).spec.quota
    assert (quota.request_burst(), quota.writes_burst()) == (3, 1)
