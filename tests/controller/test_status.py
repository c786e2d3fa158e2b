"""Status from the workloads' own status: phases and conditions."""

from __future__ import annotations

from typing import Any

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


def observe(previous: dict[str, Any], sts: Any, deploy: Any, now: str = "T1") -> dict[str, Any]:
    return status.observed_status(
        previous,
        generation=3,
        statefulset=sts,
        deployment=deploy,
        qdrant_replicas=3,
        server_replicas=2,
        credentials_secret="demo-credentials",
        endpoints={"server": "http://s"},
        expiration=None,
        now=now,
    )


def conditions(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in result["conditions"]}


def test_nothing_observed_yet_is_pending() -> None:
    result = observe({}, None, None)
    assert result["phase"] == "Pending"
    assert conditions(result)["Ready"]["status"] == "False"


def test_workloads_starting_are_provisioning() -> None:
    result = observe({}, workload(ready=1, updated=3), workload(ready=0, updated=2))
    assert result["phase"] == "Provisioning"
    assert result["readyReplicas"] == "1/3"
    assert conditions(result)["VectorStoreReady"]["reason"] == "NotReady"


def test_all_ready_is_ready_with_every_condition() -> None:
    result = observe({}, workload(ready=3, updated=3), workload(ready=2, updated=2))
    assert result["phase"] == "Ready"
    conds = conditions(result)
    assert {t: c["status"] for t, c in conds.items()} == {
        "Ready": "True",
        "VectorStoreReady": "True",
        "ServerReady": "True",
        "CredentialsReady": "True",
    }
    assert all(c["observedGeneration"] == 3 for c in conds.values())
    assert result["credentialsSecret"] == "demo-credentials" and result["observedGeneration"] == 3


def test_unobserved_generation_is_not_ready_even_with_ready_pods() -> None:
    result = observe({}, workload(generation=2, observed=1, ready=3, updated=3), workload(ready=2, updated=2))
    assert conditions(result)["VectorStoreReady"]["reason"] == "Progressing"
    assert result["phase"] != "Ready"


def test_losing_a_replica_after_ready_is_degraded() -> None:
    ready = observe({}, workload(ready=3, updated=3), workload(ready=2, updated=2))
    degraded = observe(ready, workload(ready=2, updated=3), workload(ready=2, updated=2), now="T2")
    assert degraded["phase"] == "Degraded"


def test_transition_time_moves_only_when_status_changes() -> None:
    first = observe({}, workload(ready=1, updated=3), workload(ready=0, updated=2), now="T1")
    second = observe(first, workload(ready=2, updated=3), workload(ready=0, updated=2), now="T2")
    assert conditions(second)["Ready"]["lastTransitionTime"] == "T1"
    assert conditions(second)["Ready"]["message"] != conditions(first)["Ready"]["message"]
    third = observe(second, workload(ready=3, updated=3), workload(ready=2, updated=2), now="T3")
    assert conditions(third)["Ready"]["lastTransitionTime"] == "T3"


def test_same_observation_is_no_change() -> None:
    first = observe({}, workload(ready=3, updated=3), workload(ready=2, updated=2), now="T1")
    again = observe(first, workload(ready=3, updated=3), workload(ready=2, updated=2), now="T9")
    assert not status.changed(first, again)


def test_failed_keeps_other_conditions_and_explains() -> None:
    ready = observe({}, workload(ready=3, updated=3), workload(ready=2, updated=2))
    failed = status.failed_status(ready, [Problem("StorageShrinkRefused", "cannot shrink")], 4, "T2")
    conds = conditions(failed)
    assert failed["phase"] == "Failed"
    assert conds["Ready"]["reason"] == "InvalidSpec" and "cannot shrink" in conds["Ready"]["message"]
    assert conds["VectorStoreReady"]["status"] == "True"


def test_paused() -> None:
    paused = status.paused_status({}, 2, "T1")
    assert paused["phase"] == "Paused" and conditions(paused)["Ready"]["reason"] == "Paused"
