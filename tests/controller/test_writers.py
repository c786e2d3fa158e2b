"""The other writers' decisions: a backup's status, a policy's status and runs, the backup schedule."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from memory_operator.api.store import MemoryStore
from memory_operator.controller import backups, policies, schedule, sync
from memory_operator.controller.cache import BACKUPS, STORES, Cache

NOW = "2026-01-02T03:04:05Z"


def backup(phase: str | None = None, created: str = "2026-01-02T03:00:00Z") -> dict[str, Any]:
    return {
        "metadata": {"name": "b1", "namespace": "agents", "generation": 1, "creationTimestamp": created},
        "spec": {"storeRef": {"name": "mem"}},
        "status": {"phase": phase} if phase else {},
    }


def store(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "mem", "namespace": "agents", "creationTimestamp": "2026-01-01T00:05:00Z"},
        "spec": spec,
    }


def job(condition: str | None, start: str = "2026-01-02T03:01:00Z") -> dict[str, Any]:
    conditions = [{"type": condition, "status": "True", "lastTransitionTime": "2026-01-02T03:02:00Z"}]
    return {
        "metadata": {"name": "b1-backup"},
        "status": {"startTime": start, "conditions": conditions if condition else []},
    }


def pod(message: str) -> dict[str, Any]:
    terminated = {"message": message, "finishedAt": "2026-01-02T03:02:00Z"}
    return {"status": {"containerStatuses": [{"name": "backup", "state": {"terminated": terminated}}]}}


WITH_BACKUP = store(backup={"destination": {"pvc": {}}})


def test_a_backup_waits_for_its_job_then_follows_it() -> None:
    pending = backups.backup_outcome(backup(), WITH_BACKUP, None, [], NOW)
    assert pending.status == {"phase": "Pending", "observedGeneration": 1}
    running = backups.backup_outcome(backup("Pending"), WITH_BACKUP, job(None), [], NOW)
    assert running.status is not None and running.status["phase"] == "Running"
    assert running.status["startTime"] == "2026-01-02T03:01:00Z"
    message = '{"phase":"Completed","location":"pvc://c/b1/","sizeBytes":7}'
    done = backups.backup_outcome(backup("Running"), WITH_BACKUP, job("Complete"), [pod(message)], NOW)
    assert done.status is not None and done.status["phase"] == "Completed" and done.status["sizeBytes"] == 7
    assert done.completed_at == "2026-01-02T03:02:00Z" and done.events == []
    # Finished is final.
    assert backups.backup_outcome(backup("Completed"), WITH_BACKUP, None, [], NOW).status is None


def test_a_failed_job_fails_the_backup_with_its_error_and_an_event() -> None:
    failed = backups.backup_outcome(
        backup("Running"), WITH_BACKUP, job("Failed"), [pod('{"phase":"Failed","error":"no space"}')], NOW
    )
    assert (
        failed.status is not None
        and failed.status["phase"] == "Failed"
        and failed.status["error"] == "no space"
    )
    assert [e.reason for e in failed.events] == ["BackupFailed"]


def test_a_backup_gives_its_store_time_to_appear_then_fails() -> None:
    young = backups.backup_outcome(backup(created="2026-01-02T03:03:00Z"), None, None, [], NOW)
    assert young.status == {"phase": "Pending", "observedGeneration": 1} and young.events == []
    old = backups.backup_outcome(backup(created="2026-01-02T02:00:00Z"), None, None, [], NOW)
    assert (
        old.status is not None and old.status["phase"] == "Failed" and "does not exist" in old.status["error"]
    )
    no_spec = backups.backup_outcome(backup(), store(), None, [], NOW)
    assert no_spec.status is not None and "no spec.backup" in no_spec.status["error"]


def policy(runs: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "ttl", "namespace": "agents", "generation": 3},
        "spec": {"rules": [{"name": "old", "maxAge": "7d"}], **spec},
        "status": {"lastRuns": runs or []},
    }


def labelled(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "agents", "labels": labels}}


def test_policy_status_selects_stores_and_sums_up_their_last_runs() -> None:
    runs = [
        {"store": "a", "time": "T1", "succeeded": True},
        {"store": "b", "time": "T1", "succeeded": False},
        {"store": "gone", "time": "T1", "succeeded": False},
    ]
    stores = [labelled("a", team="x"), labelled("b", team="x"), labelled("c", team="y")]
    new = policies.policy_status(policy(runs, selector={"matchLabels": {"team": "x"}}), stores, NOW)
    assert new is not None and new["matchedStores"] == ["a", "b"] and new["observedGeneration"] == 3
    conditions = {c["type"]: c for c in new["conditions"]}
    assert conditions["Ready"]["message"] == "selects 2 store(s)"
    assert conditions["LastRunSucceeded"]["status"] == "False"
    assert conditions["LastRunSucceeded"]["message"].endswith("on b")


def test_a_run_is_recorded_once_and_never_over_a_newer_one() -> None:
    finished = job("Complete")
    message = '{"store":"a","deleted":3,"matched":3,"rules":[]}'
    record = policies.run_record(policy(), labelled("a"), finished, [pod(message)], "a", NOW)
    assert record is not None and record.run["deleted"] == 3 and record.run["time"] == "2026-01-02T03:02:00Z"
    recorded = policy([record.run])
    assert policies.run_record(recorded, labelled("a"), finished, [pod(message)], "a", NOW) is None
    newer = policy([{**record.run, "time": "2026-01-03T00:00:00Z"}])
    assert policies.run_record(newer, labelled("a"), finished, [pod(message)], "a", NOW) is None
    assert policies.run_record(policy(), labelled("a"), job(None), [], "a", NOW) is None


def test_a_failed_run_warns_on_the_policy_and_the_store() -> None:
    record = policies.run_record(
        policy(), labelled("a"), job("Failed"), [pod('{"error":"Qdrant down"}')], "a", NOW
    )
    assert record is not None and record.run["succeeded"] is False
    assert [(e.target["metadata"]["name"], e.reason) for e in record.events] == [
        ("ttl", "ExpirationFailed"),
        ("a", "ExpirationFailed"),
    ]


def scheduled_store(schedule_: str = "0 * * * *", **backup_spec: Any) -> MemoryStore:
    body = store(backup={"schedule": schedule_, "destination": {"pvc": {}}, **backup_spec})
    return MemoryStore.model_validate(body)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def named(name: str, phase: str | None = "Completed") -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"storeRef": {"name": "mem"}}, "status": {"phase": phase}}


def test_the_newest_tick_is_due_once() -> None:
    s = scheduled_store()
    assert schedule.due_backup(s, [], at("2026-01-02T05:10:00Z")) == "mem-202601020500"
    assert schedule.due_backup(s, [named("mem-202601020500")], at("2026-01-02T05:59:00Z")) is None
    # After a gap only the newest missed tick is due: older ones are skipped.
    assert (
        schedule.due_backup(s, [named("mem-202601020500")], at("2026-01-02T09:30:00Z")) == "mem-202601020900"
    )


def test_no_backup_before_the_store_existed_while_one_runs_or_when_suspended() -> None:
    s = scheduled_store()
    assert schedule.due_backup(s, [], at("2026-01-01T00:30:00Z")) is None  # the 00:00 tick precedes it
    running = [named("by-hand", phase="Running")]
    assert schedule.due_backup(s, running, at("2026-01-02T05:10:00Z")) is None
    assert schedule.due_backup(scheduled_store(suspend=True), [], at("2026-01-02T05:10:00Z")) is None


def test_a_completed_backup_prunes_the_memory_backups_of_its_store_only() -> None:
    done = backup("Completed")
    done["status"]["pruned"] = ["old-1", "old-2", "other-store", "b1"]
    others = [
        {"metadata": {"name": "old-1"}, "spec": {"storeRef": {"name": "mem"}}},
        {"metadata": {"name": "old-2"}, "spec": {"storeRef": {"name": "mem"}}},
        {"metadata": {"name": "other-store"}, "spec": {"storeRef": {"name": "another"}}},
        done,
    ]
    assert backups.pruned_backups(done, others) == ["old-1", "old-2"]
    assert backups.pruned_backups(backup("Running"), others) == []


class Creates:
    def __init__(self) -> None:
        self.created: list[str] = []

    async def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self.created.append(manifest["metadata"]["name"])
        return manifest


def test_a_due_backup_is_created_only_where_the_replica_may_write_and_asked_only_then() -> None:
    body = store(backup={"schedule": "0 * * * *", "destination": {"pvc": {}}})
    cache = Cache({STORES.index_id: {"agents": [body]}, BACKUPS.index_id: {}})
    asked: list[bool] = []

    def answering(answer: bool) -> Callable[[], Awaitable[bool]]:
        async def may_write() -> bool:
            asked.append(answer)
            return answer

        return may_write

    kube = Creates()
    assert asyncio.run(sync.schedule_backup(kube, cache, "agents", "mem", answering(False))) is None  # type: ignore[arg-type]
    assert kube.created == [] and asked == [False]
    due = asyncio.run(sync.schedule_backup(kube, cache, "agents", "mem", answering(True)))  # type: ignore[arg-type]
    assert due is not None and kube.created == [due]
    # Not due (its tick's backup exists): the peering is not asked.
    cache.indexes[BACKUPS.index_id]["agents"] = [named(due)]  # type: ignore[index]
    assert asyncio.run(sync.schedule_backup(kube, cache, "agents", "mem", answering(True))) is None  # type: ignore[arg-type]
    assert asked == [False, True]
