"""Which events of a store's workloads and Jobs are worth a reconcile."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from memory_operator.controller import status
from memory_operator.controller.child_events import STATUS_FIELDS, ChildEvents


def statefulset(**status_fields: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {
            "name": "s-qdrant",
            "uid": "u1",
            "generation": 1,
            "resourceVersion": "10",
            "labels": {"memory-operator.io/store": "s"},
            "managedFields": [{"manager": "memory-operator"}],
        },
        "spec": {"replicas": 1},
        "status": dict(status_fields),
    }


def job(**status_fields: Any) -> dict[str, Any]:
    body = statefulset(**status_fields)
    body.update(apiVersion="batch/v1", kind="Job")
    body["metadata"].update(name="s-restore", uid="j1")
    return body


def seen(events: ChildEvents, body: dict[str, Any], event_type: str | None = "MODIFIED") -> bool:
    return events.is_news(event_type, body)


def test_a_new_object_and_each_step_a_reconcile_reads_are_news() -> None:
    events = ChildEvents()
    assert seen(events, statefulset(), "ADDED")
    assert seen(events, statefulset(observedGeneration=1))
    assert seen(events, statefulset(observedGeneration=1, updatedReplicas=1))
    assert seen(events, statefulset(observedGeneration=1, updatedReplicas=1, readyReplicas=1))


def test_status_bookkeeping_a_reconcile_does_not_read_is_not_news() -> None:
    events = ChildEvents()
    assert seen(events, statefulset(observedGeneration=1, readyReplicas=1), "ADDED")
    later = statefulset(observedGeneration=1, readyReplicas=1, availableReplicas=1, currentReplicas=1)
    later["metadata"]["resourceVersion"] = "11"
    later["metadata"]["managedFields"].append({"manager": "kube-controller-manager"})
    assert not seen(events, later)


@pytest.mark.parametrize(
    "change",
    [
        lambda b: b["metadata"].update(generation=2),
        lambda b: b["metadata"]["labels"].update(extra="x"),
        lambda b: b["metadata"].update(annotations={"a": "b"}),
        lambda b: b["metadata"].update(deletionTimestamp="2026-11-29T00:00:00Z"),
        lambda b: b["metadata"].update(ownerReferences=[]),
    ],
)
def test_any_change_of_metadata_is_news(change: Any) -> None:
    events = ChildEvents()
    body = statefulset(observedGeneration=1)
    assert seen(events, body, "ADDED")
    changed = copy.deepcopy(body)
    change(changed)
    assert seen(events, changed)


def test_the_echo_of_the_operators_own_write_is_not_news_but_what_follows_is() -> None:
    events = ChildEvents()
    applied = statefulset()
    events.written(applied)
    assert not seen(events, copy.deepcopy(applied), "ADDED")
    assert seen(events, statefulset(observedGeneration=1))


def test_a_deletion_is_always_news_and_forgets_the_object() -> None:
    events = ChildEvents()
    body = statefulset(observedGeneration=1)
    assert seen(events, body, "ADDED")
    assert seen(events, body, "DELETED")
    assert seen(events, body, "ADDED")


def test_a_listing_is_news_only_when_it_tells_something_new() -> None:
    events = ChildEvents()
    body = statefulset(observedGeneration=1)
    assert seen(events, body, None)
    assert not seen(events, body, None)
    assert seen(events, statefulset(observedGeneration=1, readyReplicas=1), None)


def test_a_jobs_outcome_is_news_its_pod_counts_while_running_are_not() -> None:
    events = ChildEvents()
    assert seen(events, job(active=1, startTime="t0"), "ADDED")
    assert not seen(events, job(active=1, startTime="t0", ready=1))
    counting = job(active=1, startTime="t0", ready=0, uncountedTerminatedPods={"succeeded": ["p"]})
    assert not seen(events, counting)
    finished = job(
        succeeded=1,
        startTime="t0",
        completionTime="t1",
        conditions=[{"type": "Complete", "status": "True", "lastTransitionTime": "t1"}],
    )
    assert seen(events, finished)


def test_the_fields_named_are_those_the_readiness_of_a_workload_depends_on() -> None:
    """status.workload's verdict changes with each named field, so none may be dropped."""
    base = statefulset(observedGeneration=1, readyReplicas=1, updatedReplicas=1)
    verdict = status.workload(base, "vector store", 1)
    for field in STATUS_FIELDS["StatefulSet"]:
        changed = copy.deepcopy(base)
        changed["status"][field] = 0
        assert status.workload(changed, "vector store", 1) != verdict, field
