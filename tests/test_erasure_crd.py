"""The MemoryErasure CRD: a subject is exactly one id of the memory server's grammar, the spec never
changes, and the model refuses what the API server refuses."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from memory_operator.api import MemoryErasure
from memory_operator.api.erasure import ErasureSubject
from test_crds import api_server_errors


def erasure(spec: dict[str, Any], name: str = "erase-1") -> dict[str, Any]:
    return {
        "apiVersion": "memory-operator.io/v1alpha1",
        "kind": "MemoryErasure",
        "metadata": {"name": name, "namespace": "agents"},
        "spec": spec,
    }


VALID = erasure({"store": "mem", "subject": {"agentId": "support-bot"}, "reference": "PRIV-1"})

INVALID = [
    ("no-subject", erasure({"store": "mem"}), "'subject' is a required property"),
    ("empty-subject", erasure({"store": "mem", "subject": {}}), "exactly one of userId, agentId and runId"),
    (
        "two-ids",
        erasure({"store": "mem", "subject": {"userId": "a", "runId": "r"}}),
        "exactly one of userId, agentId and runId",
    ),
    ("wildcard", erasure({"store": "mem", "subject": {"userId": "*"}}), "does not match"),
    ("space", erasure({"store": "mem", "subject": {"userId": "alice smith"}}), "does not match"),
    ("unknown-field", erasure({"store": "mem", "subject": {"user": "a"}}), "'user' was unexpected"),
    ("bad-store", erasure({"store": "Mem", "subject": {"userId": "a"}}), "does not match"),
    (
        "long-name",
        erasure({"store": "mem", "subject": {"userId": "a"}}, name="e" * 64),
        "a MemoryErasure name has at most 63 characters",
    ),
]


@pytest.mark.parametrize(("obj", "expected"), [(o, e) for _, o, e in INVALID], ids=[i for i, _, _ in INVALID])
def test_invalid_erasures_are_refused(obj: dict[str, Any], expected: str) -> None:
    errors = api_server_errors(obj)
    assert any(expected in error for error in errors), errors
    with pytest.raises(ValidationError):
        MemoryErasure.model_validate(obj)


def test_a_valid_erasure_is_accepted_and_names_its_subject_by_kind() -> None:
    assert api_server_errors(VALID) == []
    subject = MemoryErasure.model_validate(VALID).spec.subject
    assert (subject.kind, subject.value, subject.payload_key) == ("agentId", "support-bot", "agent_id")


def test_the_model_refuses_an_id_with_a_trailing_newline() -> None:
    # Python's `$` (the schema checker here) matches before a final newline; the API server's does not.
    with pytest.raises(ValidationError):
        ErasureSubject.model_validate({"runId": "r\n"})


@pytest.mark.parametrize(
    ("path", "value"),
    [("store", "other"), ("subject", {"agentId": "other-bot"}), ("reason", "new"), ("reference", "PRIV-2")],
)
def test_the_spec_is_immutable(path: str, value: Any) -> None:
    changed = copy.deepcopy(VALID)
    changed["spec"][path] = value
    assert "a MemoryErasure spec is immutable" in api_server_errors(changed, old=VALID)


@pytest.mark.parametrize(
    "subject", [{"userId": "alice@example.com"}, {"agentId": "team-a:bot|1"}, {"runId": "_run.2026+1"}]
)
def test_ids_of_the_servers_grammar_are_accepted(subject: dict[str, str]) -> None:
    assert api_server_errors(erasure({"store": "mem", "subject": subject})) == []
    assert ErasureSubject.model_validate(subject).value in subject.values()
