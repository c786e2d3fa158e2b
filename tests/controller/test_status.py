"""Status from the workloads' own status: phases and conditions, built on the API's status models."""

from __future__ import annotations

from typing import Any

from memory_operator.api.store import Endpoints, MemoryStoreStatus
from memory_operator.controller import status
from memory_operator.controller.validation import Problem


def workload(
    generation: int = 1, observed: int | None = 1, ready: int = 0, updated: int = 0
) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"generation": generation}, "status": {}}
    if observed is not None:
        obj["status"]["observedGeneration"] = observed
    obj["status"].update(readyReplicas=ready, updatedReplicas=updated)
    return obj


def observe(
    previous: MemoryStoreStatus, sts: Any, deploy: Any, now: str = "T1", applying: bool = False
) -> MemoryStoreStatus:
    seen = status.Observed(
        generation=3,
        vector=status.workload(sts, "Qdrant", 3, applying=applying),
        server=status.workload(deploy, "memory server", 2),
        qdrant_replicas=3,
        credentials_secret="demo-credentials",
        endpoints=Endpoints(server="http://s"),
    )
    return status.observed(previous, seen, now)


def conditions(result: MemoryStoreStatus) -> dict[str, Any]:
    return {c.type: c for c in result.conditions}


EMPTY = MemoryStoreStatus()


def test_nothing_observed_yet_is_pending() -> None:
    result = observe(EMPTY, None, None)
    assert result.phase == "Pending"
    assert conditions(result)["Ready"].status == "False"


def test_workloads_starting_are_provisioning() -> None:
    result = observe(EMPTY, workload(ready=1, updated=3), workload(ready=0, updated=2))
    assert result.phase == "Provisioning"
    assert result.ready_replicas == "1/3"
    assert conditions(result)["VectorStoreReady"].reason == "NotReady"


def test_all_ready_is_ready_with_every_condition() -> None:
    result = observe(EMPTY, workload(ready=3, updated=3), workload(ready=2, updated=2))
    assert result.phase == "Ready"
    conds = conditions(result)
    assert {t: c.status for t, c in conds.items()} == {
        "Ready": "True",
        "VectorStoreReady": "True",
        "ServerReady": "True",
        "CredentialsReady": "True",
    }
    assert all(c.observed_generation == 3 for c in conds.values())
    assert result.credentials_secret == "demo-credentials" and result.observed_generation == 3


def test_unobserved_generation_is_not_ready_even_with_ready_pods() -> None:
    result = observe(
        EMPTY, workload(generation=2, observed=1, ready=3, updated=3), workload(ready=2, updated=2)
    )
    assert conditions(result)["VectorStoreReady"].reason == "Progressing"
    assert result.phase != "Ready"


def test_a_workload_being_applied_is_progressing() -> None:
    result = observe(EMPTY, workload(ready=3, updated=3), workload(ready=2, updated=2), applying=True)
    assert conditions(result)["VectorStoreReady"].reason == "Progressing"


def test_losing_a_replica_after_ready_is_degraded() -> None:
    ready = observe(EMPTY, workload(ready=3, updated=3), workload(ready=2, updated=2))
    degraded = observe(ready, workload(ready=2, updated=3), workload(ready=2, updated=2), now="T2")
    assert degraded.phase == "Degraded"


def test_transition_time_moves_only_when_status_changes() -> None:
    first = observe(EMPTY, workload(ready=1, updated=3), workload(ready=0, updated=2), now="T1")
    second = observe(first, workload(ready=2, updated=3), workload(ready=0, updated=2), now="T2")
    assert conditions(second)["Ready"].last_transition_time == "T1"
    assert conditions(second)["Ready"].message != conditions(first)["Ready"].message
    third = observe(second, workload(ready=3, updated=3), workload(ready=2, updated=2), now="T3")
    assert conditions(third)["Ready"].last_transition_time == "T3"


def test_same_observation_is_no_change() -> None:
    first = observe(EMPTY, workload(ready=3, updated=3), workload(ready=2, updated=2), now="T1")
    again = observe(first, workload(ready=3, updated=3), workload(ready=2, updated=2), now="T9")
    assert not status.changed(first.wire(), again.wire())


def test_failed_keeps_other_conditions_and_explains() -> None:
    ready = observe(EMPTY, workload(ready=3, updated=3), workload(ready=2, updated=2))
    failed = status.failed(ready, [Problem("StorageShrinkRefused", "cannot shrink")], 4, "T2")
    conds = conditions(failed)
    assert failed.phase == "Failed"
    assert conds["Ready"].reason == "InvalidSpec" and "cannot shrink" in conds["Ready"].message
    assert conds["VectorStoreReady"].status == "True"


def test_paused() -> None:
    paused = status.paused(EMPTY, 2, "T1")
    assert paused.phase == "Paused" and conditions(paused)["Ready"].reason == "Paused"


def test_set_condition_replaces_by_type() -> None:
    first = status.set_condition([], status.condition("A", True, "Ok", "fine", 1), "T1")
    second = status.set_condition(first, status.condition("B", False, "No", "bad", 1), "T2")
    third = status.set_condition(second, status.condition("A", True, "Ok", "still fine", 2), "T3")
    assert [(c.type, c.message, c.last_transition_time) for c in third] == [
        ("A", "still fine", "T1"),
        ("B", "bad", "T2"),
    ]


def test_times_are_read_as_the_api_writes_them_and_zone_less_ones_as_utc() -> None:
    import datetime

    import pytest

    utc = datetime.UTC
    assert status.parse_rfc3339("2026-01-02T03:04:05Z") == datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=utc)
    assert status.parse_rfc3339("2026-01-02T03:04:05.123456Z").microsecond == 123456
    assert status.parse_rfc3339("2026-01-02T04:04:05+01:00") == status.parse_rfc3339("2026-01-02T03:04:05Z")
    # Kopf's peering objects write their times without a zone, in UTC.
    assert status.parse_rfc3339("2026-01-02T03:04:05.5").tzinfo == utc
    assert status.parse_rfc3339(status.now_rfc3339()).tzinfo == utc
    with pytest.raises(ValueError):
        status.parse_rfc3339("yesterday")
    # Written back as the API writes it: in UTC, to the second.
    assert status.rfc3339(status.parse_rfc3339("2026-01-02T04:04:05.9+01:00")) == "2026-01-02T03:04:05Z"
