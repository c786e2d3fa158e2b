"""MemoryErasures, decided as tables: which erasure's Job a store runs, what its restore re-applies, the
erasure's status from its Job (retried with a growing delay while the store is down), and until when the
store's backups hold the subject. Pure: no cluster."""

from __future__ import annotations

import base64
import datetime
import json
from typing import Any

import pytest

from controller.test_decide import (
    BACKUP_SPEC,
    NOW,
    backup_body,
    bare,
    live,
    run,
    store_body,
)
from memory_operator import labels
from memory_operator.api.erasure import ErasuresFile
from memory_operator.api.store import MemoryStore
from memory_operator.commands.render import render_documents
from memory_operator.controller import erasure_status, erasures
from memory_operator.controller.snapshot import Snapshot
from memory_operator.render import RenderSettings, names
from memory_operator.render import erasure as erasure_render

SUBJECT_ID = "alice-4f1c"


def erasure_body(
    name: str,
    store: str = "mem",
    created: str = "2026-01-01T00:00:00Z",
    phase: str | None = None,
    subject: dict[str, str] | None = None,
    **status: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "memory-operator.io/v1alpha1",
        "kind": "MemoryErasure",
        "metadata": {
            "name": name,
            "namespace": "agents",
            "uid": f"uid-{name}",
            "generation": 1,
            "creationTimestamp": created,
        },
        "spec": {"store": store, "subject": subject or {"userId": SUBJECT_ID}, "reference": "PRIV-1"},
        "status": {**({"phase": phase} if phase else {}), **status},
    }


def erasure_job(name: str, attempt: int = 1, owner: str | None = None, **job_status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": names.erasure_job_name(name),
            "namespace": "agents",
            "labels": {labels.ERASURE: name, labels.STORE: "mem"},
            "annotations": {labels.ERASURE_ATTEMPT: str(attempt)},
            "ownerReferences": [{"kind": "MemoryErasure", "name": name, "uid": owner or f"uid-{name}"}],
        },
        "status": job_status,
    }


def job_pods(message: dict[str, Any]) -> list[dict[str, Any]]:
    text = json.dumps(message)
    return [
        {"status": {"containerStatuses": [{"state": {"terminated": {"message": text, "finishedAt": "T"}}}]}}
    ]


def failed_job(name: str, attempt: int, at: str) -> dict[str, Any]:
    return erasure_job(
        name, attempt, conditions=[{"type": "Failed", "status": "True", "lastTransitionTime": at}]
    )


def completed_job(name: str, at: str = "2026-01-02T03:00:00Z") -> dict[str, Any]:
    return erasure_job(
        name,
        conditions=[{"type": "Complete", "status": "True", "lastTransitionTime": at}],
        completionTime=at,
        startTime="2026-01-02T02:59:00Z",
    )


def store_snapshot(
    erasures_: list[dict[str, Any]],
    children: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Snapshot:
    return Snapshot(body=body or store_body(), children=children or [], erasures=erasures_, **kwargs)


def the_store(body: dict[str, Any] | None = None) -> MemoryStore:
    return MemoryStore.model_validate(body or store_body())


# --- which erasure runs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "erasure_list", "jobs", "expected"),
    [
        ("none", [], [], []),
        ("oldest-first", [erasure_body("b", created="T2"), erasure_body("a", created="T1")], [], [("a", 1)]),
        (
            "one-at-a-time",
            [erasure_body("a", created="T1"), erasure_body("b", created="T2")],
            [erasure_job("b", 3)],
            [("b", 3)],
        ),
        ("finished-skipped", [erasure_body("a", phase="Completed"), erasure_body("b")], [], [("b", 1)]),
        ("failed-skipped", [erasure_body("a", phase="Failed")], [], []),
        ("next-attempt", [erasure_body("a", phase="Running", attempts=2)], [], [("a", 3)]),
        ("other-store", [erasure_body("a", store="other")], [], []),
        ("job-of-a-deleted-namesake", [erasure_body("a")], [erasure_job("a", owner="old-uid")], []),
    ],
)
def test_which_erasure_runs(
    case: str, erasure_list: list[Any], jobs: list[Any], expected: list[tuple[str, int]]
) -> None:
    run_now, stale = erasures.runs(the_store(), store_snapshot(erasure_list, jobs))
    assert [(e.name, attempt) for e, attempt in run_now] == expected
    assert [ref.name for ref in stale] == (["a-erase"] if case == "job-of-a-deleted-namesake" else [])


def test_no_erasure_runs_while_the_store_restores_or_on_the_openmemory_flavor() -> None:
    snap = store_snapshot([erasure_body("a")])
    restoring = erasures.decide(the_store(), snap, decide_status(), restoring=True, restore_job=False)
    assert restoring.run == []
    body = store_body(server={"flavor": "openmemory"})
    flavor = erasures.decide(the_store(body), store_snapshot([erasure_body("a")], body=body), decide_status(),
                             restoring=False, restore_job=False)  # fmt: skip
    assert flavor.run == []


def decide_status() -> Any:
    from memory_operator.api.store import MemoryStoreStatus

    return MemoryStoreStatus()


def secret_file(decision: Any, store: str = "mem") -> ErasuresFile:
    secret = next(m for m in decision.apply if m["metadata"]["name"] == f"{store}-erasures")
    return ErasuresFile.model_validate_json(base64.b64decode(secret["data"]["erasures.json"]))


def test_the_store_runs_the_erasure_job_with_its_subject_in_a_secret_only() -> None:
    decision = run(Snapshot(body=store_body(), erasures=[erasure_body("a")]))
    job = next(m for m in decision.apply if m["kind"] == "Job" and m["metadata"]["name"] == "a-erase")
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-a", "owned by its MemoryErasure"
    assert job["metadata"]["annotations"][labels.ERASURE_ATTEMPT] == "1"
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["args"] == ["erase", "--erasure", "a"]
    assert {"name": "erasures", "secret": {"secretName": "mem-erasures"}} in pod["volumes"]
    assert SUBJECT_ID not in json.dumps(job), "a subject's id is never in a Job"
    assert secret_file(decision).model_dump(by_alias=True, exclude_none=True)["erase"] == [
        {"name": "a", "subject": {"userId": SUBJECT_ID}}
    ]


def test_the_secret_is_emptied_once_nothing_runs() -> None:
    done = erasure_body("a", phase="Completed", completionTime="2026-01-02T03:00:00Z")
    secret = live(erasure_render.erasures_secret(the_store(), [], []))
    secret["data"] = {"erasures.json": base64.b64encode(b'{"erase":[{"name":"a"}]}').decode()}
    decision = run(Snapshot(body=store_body(), erasures=[done], children=[secret]))
    assert secret_file(decision) == ErasuresFile()


def test_what_the_operator_applies_is_what_render_prints_with_erasures() -> None:
    body = store_body(backup=BACKUP_SPEC)
    found = [erasure_body("a"), erasure_body("b", created="2026-01-03T00:00:00Z")]
    applied = run(Snapshot(body=body, erasures=found)).apply
    printed = render_documents(
        {"MemoryStore": [body], "MemoryPolicy": [], "MemoryBackup": [], "MemoryErasure": found},
        RenderSettings(),
        with_secrets=True,
    )
    assert [bare(m) for m in applied if m["metadata"]["name"] == "a-erase"] == [
        m for m in printed if m["metadata"]["name"] == "a-erase"
    ]
    assert not any(m["metadata"]["name"] == "b-erase" for m in printed)


# --- what a restore re-applies ------------------------------------------------------------------------


def restoring_store() -> dict[str, Any]:
    return store_body(name="dst", bootstrap={"fromBackup": {"name": "src-1"}})


def source_backup(taken: str = "2026-01-05T00:00:00Z") -> dict[str, Any]:
    backup = backup_body("src-1", "Completed", store="src")
    backup["status"]["startTime"] = taken
    return backup


@pytest.mark.parametrize(
    ("erasure", "reapplied"),
    [
        (erasure_body("after", store="src", phase="Completed", completionTime="2026-01-06T00:00:00Z"), True),
        (
            erasure_body("before", store="src", phase="Completed", completionTime="2026-01-04T00:00:00Z"),
            False,
        ),
        (
            erasure_body("during", store="src", phase="Completed", completionTime="2026-01-05T00:00:00Z"),
            False,
        ),
        (erasure_body("pending", store="src"), True),
        (erasure_body("running", store="src", phase="Running"), True),
        (erasure_body("failed", store="src", phase="Failed", completionTime="2026-01-06T00:00:00Z"), False),
        (erasure_body("own", store="dst"), True),
        (
            erasure_body(
                "unrelated", store="elsewhere", phase="Completed", completionTime="2026-01-06T00:00:00Z"
            ),
            False,
        ),
    ],
)
def test_what_a_restore_reapplies(erasure: dict[str, Any], reapplied: bool) -> None:
    snap = Snapshot(body=restoring_store(), backups=[source_backup()], erasures=[erasure])
    decision = run(snap)
    restore = next(m for m in decision.apply if m["metadata"]["name"] == "dst-restore")
    assert {"name": "erasures", "secret": {"secretName": "dst-erasures"}} in restore["spec"]["template"][
        "spec"
    ]["volumes"]
    listed = [e.name for e in secret_file(decision, "dst").reapply]
    assert listed == ([erasure["metadata"]["name"]] if reapplied else [])
    # The restore's erasures wait: the restore applies them (or they run after it).
    assert not any(m["kind"] == "Job" and labels.ERASURE in m["metadata"]["labels"] for m in decision.apply)
    assert decision.status is not None
    condition = next(c for c in decision.status.conditions if c.type == erasures.CONDITION)
    assert (condition.status, condition.reason) == ("Unknown", "Reapplying")


def restored(summary: dict[str, Any], erasure_list: list[dict[str, Any]]) -> Any:
    body = restoring_store()
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "dst-restore", "namespace": "agents", "labels": {labels.STORE: "dst"}},
        "status": {
            "startTime": "2026-01-06T12:00:00Z",
            "conditions": [{"type": "Complete", "status": "True"}],
        },
    }
    message = {"phase": "Completed", **summary}
    snap = Snapshot(
        body=body,
        backups=[source_backup()],
        erasures=erasure_list,
        children=[job],
        job_pods={"dst-restore": job_pods(message)},
    )
    return run(snap)


def reapplied_condition(decision: Any) -> Any:
    return next(c for c in decision.status.conditions if c.type == erasures.CONDITION)


def test_the_store_says_how_many_erasures_the_restore_reapplied() -> None:
    done = erasure_body("a", store="src", phase="Completed", completionTime="2026-01-06T00:00:00Z")
    decision = restored({"erasuresReapplied": 1, "erasuresDeleted": 4, "erasures": ["a"]}, [done])
    condition = reapplied_condition(decision)
    assert (condition.status, condition.reason) == ("True", "Reapplied")
    assert (
        "re-applied 1 MemoryErasure(s)" in condition.message and "(4 memories deleted)" in condition.message
    )
    assert not [e for e in decision.events if e.reason == "ErasuresMissed"]


def test_an_erasure_that_came_after_the_restore_started_is_named() -> None:
    late = erasure_body("late", store="src", created="2026-01-07T00:00:00Z")
    decision = restored({"erasuresReapplied": 0, "erasures": []}, [late])
    condition = reapplied_condition(decision)
    assert (condition.status, condition.reason) == ("False", "ErasuresMissed")
    assert "late" in condition.message and SUBJECT_ID not in condition.message
    assert [e.reason for e in decision.events if e.warning] == ["ErasuresMissed"]


def test_an_erasure_of_the_restored_store_for_the_same_subject_covers_a_missed_one() -> None:
    late = erasure_body("late", store="src", created="2026-01-07T00:00:00Z")
    own = erasure_body("own", store="dst", created="2026-01-08T00:00:00Z")
    other = erasure_body("other", store="dst", subject={"runId": "r-1"})
    assert reapplied_condition(restored({"erasures": []}, [late, other])).reason == "ErasuresMissed"
    assert reapplied_condition(restored({"erasures": []}, [late, own])).reason == "Reapplied"


def test_a_cut_summary_names_only_the_erasures_made_after_the_restore_started() -> None:
    early = erasure_body("early", store="src", created="2026-01-06T00:00:00Z")
    late = erasure_body("late", store="src", created="2026-01-07T00:00:00Z")
    decision = restored({"erasuresReapplied": 2, "erasures": []}, [early, late])
    message = reapplied_condition(decision).message
    assert "late" in message and "early" not in message


# --- the erasure's status ---------------------------------------------------------------------------


ANY_STORE: dict[str, Any] = store_body()


def outcome(
    erasure: dict[str, Any],
    job: dict[str, Any] | None = None,
    pods: list[dict[str, Any]] | None = None,
    store: dict[str, Any] | None = ANY_STORE,
    backups: list[dict[str, Any]] | None = None,
    now: str = "2026-01-02T03:00:10Z",
    ahead: str | None = None,
) -> erasure_status.ErasureOutcome:
    return erasure_status.erasure_outcome(erasure, store, job, pods or [], backups or [], now, ahead)


def erased(result: erasure_status.ErasureOutcome) -> dict[str, Any]:
    assert result.status is not None
    return next(c for c in result.status["conditions"] if c["type"] == "Erased")


COMPLETED = {
    "phase": "Completed",
    "erasure": "a",
    "subjectKind": "userId",
    "deleted": 7,
    "relatedDeleted": 2,
    "remaining": 0,
    "collections": ["memories"],
}
DOWN = {
    "phase": "Failed",
    "reason": "StoreUnavailable",
    "error": "Qdrant at http://q:6333 did not become ready",
}


@pytest.mark.parametrize(
    ("case", "kwargs", "phase", "reason", "result"),
    [
        ("pending", {}, "Pending", "Pending", None),
        ("queued", {"ahead": "older"}, "Pending", "Queued", None),
        ("no-store", {"store": None}, "Pending", "StoreNotFound", None),
        (
            "openmemory",
            {"store": store_body(server={"flavor": "openmemory"})},
            "Failed",
            "FlavorNotSupported",
            "failed",
        ),
        ("running", {"job": erasure_job("a", startTime="2026-01-02T02:59:00Z")}, "Running", "Running", None),
        (
            "completed",
            {"job": completed_job("a"), "pods": job_pods(COMPLETED)},
            "Completed",
            "Verified",
            "completed",
        ),
        (
            "written-meanwhile",
            {"job": completed_job("a"), "pods": job_pods({**COMPLETED, "remaining": 1})},
            "Completed",
            "NotVerified",
            "completed",
        ),
        (
            "store-down",
            {"job": failed_job("a", 1, "2026-01-02T03:00:00Z"), "pods": job_pods(DOWN)},
            "Running",
            "StoreUnavailable",
            "retried",
        ),
        (
            "refused",
            {
                "job": failed_job("a", 1, "2026-01-02T03:00:00Z"),
                "pods": job_pods({"phase": "Failed", "reason": "QdrantError", "error": "HTTP 403"}),
            },
            "Failed",
            "QdrantError",
            "failed",
        ),
        ("no-summary", {"job": failed_job("a", 1, "2026-01-02T03:00:00Z")}, "Failed", "JobFailed", "failed"),
    ],
)
def test_the_erasures_status(
    case: str, kwargs: dict[str, Any], phase: str, reason: str, result: str | None
) -> None:
    found = outcome(erasure_body("a"), **kwargs)
    assert found.status is not None and found.status["phase"] == phase
    assert erased(found)["reason"] == reason
    assert found.outcome == result
    for event in found.events:
        assert SUBJECT_ID not in event.message, "a subject's id is never in an Event"
    assert SUBJECT_ID not in json.dumps(found.status), "nor in a status"


def test_a_completed_erasure_records_what_its_job_did_and_tells_the_store() -> None:
    found = outcome(erasure_body("a", phase="Running", attempts=2), completed_job("a"), job_pods(COMPLETED))
    assert found.status is not None
    assert {
        k: found.status.get(k)
        for k in ("deleted", "relatedDeleted", "verified", "remaining", "completionTime")
    } == {
        "deleted": 7,
        "relatedDeleted": 2,
        "verified": True,
        "remaining": 0,
        "completionTime": "2026-01-02T03:00:00Z",
    }
    (_, on_store) = found.events
    assert on_store.target["kind"] == "MemoryStore" and not on_store.warning
    assert on_store.message == (
        "MemoryErasure a: 7 memories of the userId subject deleted, and 2 related records (reference PRIV-1)"
    )


def test_a_second_erasure_of_the_same_subject_completes_with_nothing_deleted() -> None:
    nothing = {**COMPLETED, "deleted": 0, "relatedDeleted": 0}
    found = outcome(erasure_body("again"), completed_job("again"), job_pods({**nothing, "erasure": "again"}))
    assert found.status is not None
    assert (found.status["phase"], found.status["deleted"], found.status["verified"]) == (
        "Completed",
        0,
        True,
    )


@pytest.mark.parametrize(("attempt", "delay"), [(1, 30), (2, 60), (3, 120), (5, 480), (6, 600), (40, 600)])
def test_the_delay_before_running_again_doubles_up_to_ten_minutes(attempt: int, delay: int) -> None:
    assert erasure_status.retry_delay(attempt) == delay


def test_a_store_that_is_down_has_its_erasure_run_again_after_the_delay() -> None:
    job, pods = failed_job("a", 2, "2026-01-02T03:00:00Z"), job_pods(DOWN)
    first = outcome(erasure_body("a", phase="Running", attempts=2), job, pods, now="2026-01-02T03:00:05Z")
    assert not first.retry, "its failure is written before its Job goes"
    assert "attempt 3 starts at 2026-01-02T03:01:00Z" in erased(first)["message"]
    assert [e.reason for e in first.events] == ["ErasureRetrying"] and first.events[0].warning
    recorded = erasure_body("a", **first.status) if first.status else erasure_body("a")
    recorded["status"] = first.status
    early = outcome(recorded, job, pods, now="2026-01-02T03:00:59Z")
    late = outcome(recorded, job, pods, now="2026-01-02T03:01:00Z")
    assert (early.retry, late.retry) == (False, True)
    assert (early.status, early.events, early.outcome) == (None, [], None), "nothing new to say"
    # Between the attempts the erasure stays as it is, and the store runs attempt 3.
    assert outcome(recorded).status is None
    snap = store_snapshot([recorded])
    assert [(e.name, a) for e, a in erasures.runs(the_store(), snap)[0]] == [("a", 3)]


def test_a_finished_erasure_never_changes_but_for_its_backups() -> None:
    failed = erasure_body("a", phase="Failed", error="x")
    assert outcome(failed, completed_job("a"), job_pods(COMPLETED)).status is None


# --- backups that may still hold the subject ---------------------------------------------------------


def store_backup(name: str, started: str, phase: str = "Completed") -> dict[str, Any]:
    backup = backup_body(name, phase)
    backup["status"].update({"startTime": started, "stopTime": started})
    return backup


SCHEDULED = {
    "schedule": "0 2 * * *",
    "destination": {"pvc": {}},
    "retention": {"maxCount": 3, "maxAge": "10d"},
}


@pytest.mark.parametrize(
    ("spec", "backups", "holding", "until"),
    [
        # Three newer backups are needed: the third nightly tick after now; ten days come later.
        (SCHEDULED, ["2026-01-01T02:00:00Z"], 1, "2026-01-05T02:00:00Z"),
        # One newer already: two more nightly ticks.
        (
            SCHEDULED,
            ["2026-01-01T02:00:00Z", "2026-01-02T02:00:00Z", "2026-01-03T02:00:00Z"],
            2,
            "2026-01-04T02:00:00Z",
        ),
        # Age first: ten days after the last holding backup, at the next tick.
        (
            {**SCHEDULED, "retention": {"maxCount": 30, "maxAge": "10d"}},
            ["2026-01-01T02:00:00Z"],
            1,
            "2026-01-12T02:00:00Z",
        ),
        # Count only.
        (
            {**SCHEDULED, "retention": {"maxCount": 1, "maxAge": None}},
            ["2026-01-01T02:00:00Z"],
            1,
            "2026-01-03T02:00:00Z",
        ),
        # No schedule to take the pruning backup.
        ({**SCHEDULED, "suspend": True}, ["2026-01-01T02:00:00Z"], 1, None),
        (None, ["2026-01-01T02:00:00Z"], 1, None),
        # Nothing taken before the erasure.
        (SCHEDULED, ["2026-01-03T02:00:00Z"], 0, None),
    ],
)
def test_until_when_backups_hold_the_subject(
    spec: dict[str, Any] | None, backups: list[str], holding: int, until: str | None
) -> None:
    done = erasure_body("a", phase="Completed", completionTime="2026-01-02T12:00:00Z")
    store = store_body(**({"backup": spec} if spec else {}))
    found = [store_backup(f"b{i}", started) for i, started in enumerate(backups)]
    result = outcome(done, store=store, backups=found, now="2026-01-02T13:00:00Z")
    assert result.status is not None
    assert result.status.get("backupsHoldingSubject") == holding
    assert result.status.get("backupsAgeOutBy") == until
    held = next(c for c in result.status["conditions"] if c["type"] == "BackupsHoldSubject")
    assert held["status"] == ("True" if holding else "False")


def test_failed_and_other_stores_backups_hold_nothing() -> None:
    done = erasure_body("a", phase="Completed", completionTime="2026-01-02T12:00:00Z")
    others = [store_backup("f", "2026-01-01T02:00:00Z", "Failed")]
    elsewhere = backup_body("o", "Completed", store="other")
    elsewhere["status"]["startTime"] = "2026-01-01T02:00:00Z"
    result = outcome(done, store=store_body(backup=SCHEDULED), backups=[*others, elsewhere])
    assert result.status is not None and result.status["backupsHoldingSubject"] == 0


def test_backup_times_are_parsed_in_utc() -> None:
    parsed = erasure_status.taken_time(store_backup("b", "2026-01-01T02:00:00Z"))
    assert parsed == datetime.datetime(2026, 1, 1, 2, tzinfo=datetime.UTC)
    assert NOW
