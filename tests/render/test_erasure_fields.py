"""Every leaf of a MemoryErasure's spec has a consumer: the subject changes what the store's erasure Job
is given (the erasures Secret), `store` which store runs it, `reason` and `reference` the Events that
record it."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from memory_operator.api.erasure import MemoryErasureSpec
from memory_operator.controller import decide, erasure_status
from memory_operator.controller.snapshot import Snapshot
from memory_operator.render import Credentials, RenderSettings
from render.test_every_field import leaves, set_path

BASE: dict[str, Any] = {
    "store": "mem",
    "subject": {"userId": "alice"},
    "reason": "art. 17",
    "reference": "T-1",
}
SUBJECT_CHANGES: dict[str, Any] = {
    "subject": {"userId": "bob"},
    "subject.userId": "carol",
    "subject.agentId": "bot",
    "subject.runId": "run-1",
}
RECORD_CHANGES: dict[str, Any] = {"reason": "consent withdrawn", "reference": "T-2"}
STORE = {
    "apiVersion": "memory-operator.io/v1alpha1",
    "kind": "MemoryStore",
    "metadata": {"name": "mem", "namespace": "agents", "uid": "uid-mem", "generation": 1},
    "spec": {},
}


def erasure(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "memory-operator.io/v1alpha1",
        "kind": "MemoryErasure",
        "metadata": {"name": "e", "namespace": "agents", "uid": "uid-e", "creationTimestamp": "T"},
        "spec": spec,
    }


def secret_for(spec: dict[str, Any]) -> str:
    """The erasures file the store's Job reads, for an erasure of `spec`."""
    snap = Snapshot(body=STORE, erasures=[erasure(spec)])
    decided = decide.decide(
        snap, RenderSettings(), Credentials("a" * 16, "b" * 16, "c" * 16), "2026-01-01T00:00:00Z"
    )
    found = [m for m in decided.apply if m["metadata"]["name"] == "mem-erasures"]
    return base64.b64decode(found[0]["data"]["erasures.json"]).decode() if found else ""


def events_for(spec: dict[str, Any]) -> list[str]:
    """The Events of the erasure's completion."""
    job = {
        "metadata": {
            "name": "e-erase",
            "annotations": {},
            "ownerReferences": [{"kind": "MemoryErasure", "uid": "uid-e"}],
        },
        "status": {
            "conditions": [{"type": "Complete", "status": "True"}],
            "completionTime": "2026-01-01T00:00:00Z",
        },
    }
    message = '{"phase":"Completed","deleted":1,"remaining":0}'
    pods = [{"status": {"containerStatuses": [{"state": {"terminated": {"message": message}}}]}}]
    found = erasure_status.erasure_outcome(erasure(spec), STORE, job, pods, [], "2026-01-01T00:00:01Z")
    return [e.message for e in found.events]


def test_every_leaf_is_listed() -> None:
    assert set(leaves(MemoryErasureSpec)) == {"store", *SUBJECT_CHANGES, *RECORD_CHANGES} - {"subject"}


@pytest.mark.parametrize("path", sorted(SUBJECT_CHANGES))
def test_the_subject_changes_what_the_job_erases(path: str) -> None:
    changed = copy.deepcopy(BASE)
    if path.count(".") == 1:
        changed["subject"] = {}
    set_path(changed, path, SUBJECT_CHANGES[path])
    assert secret_for(BASE) != secret_for(changed), f"{path} has no consumer"


@pytest.mark.parametrize("path", sorted(RECORD_CHANGES))
def test_the_record_fields_are_in_the_events(path: str) -> None:
    changed = copy.deepcopy(BASE)
    set_path(changed, path, RECORD_CHANGES[path])
    assert events_for(BASE) != events_for(changed), f"{path} has no consumer"
    assert all(RECORD_CHANGES[path] in message for message in events_for(changed))


def test_the_store_field_says_which_store_runs_it() -> None:
    assert "alice" in secret_for(BASE)
    assert secret_for({**BASE, "store": "other"}) == ""
