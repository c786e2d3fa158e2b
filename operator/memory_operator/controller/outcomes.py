"""On-demand backups and the results of finished backup and expiration Jobs."""

from __future__ import annotations

import copy
import datetime
import hashlib
import logging
from collections.abc import Mapping
from typing import Any

import kopf
from pydantic import ValidationError

from memory_operator import env
from memory_operator.api.store import MemoryStore
from memory_operator.controller import metrics, plan, results, status
from memory_operator.controller.kube import BACKUP, JOB, POD, POLICY, STORE, Kube, event_target, selector
from memory_operator.controller.reconcile import Reconciler
from memory_operator.controller.settings import (
    BACKUP_LABEL,
    MANAGED_BY,
    POLICY_LABEL,
    RESULT_ANNOTATION,
    STORE_LABEL,
)
from memory_operator.render import RenderSettings
from memory_operator.render import backup as backup_render

logger = logging.getLogger("memory_operator.controller")


def backup_job_name(backup: str) -> str:
    """`<backup>-backup`, shortened with a stable hash to fit a Job name (63 characters)."""
    name = f"{backup}-backup"
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(backup.encode()).hexdigest()[:8]
    return f"{backup[:45].rstrip('-')}-{digest}-backup"


def backup_job(
    store: MemoryStore, backup: Mapping[str, Any], settings: RenderSettings
) -> dict[str, Any] | None:
    """The Job taking one backup: the store's backup CronJob's job, run with `--backup`.

    `None` when the store has no `spec.backup` (so no destination). The scheduled CronJob only creates
    the MemoryBackup (`backup --store S`); this Job, owned by the MemoryBackup, takes it.
    """
    if store.spec.backup is None:
        return None
    cronjob = backup_render.cronjob(
        store, store.spec.backup, settings.job_image, settings.job_service_account
    )
    backup_name = backup["metadata"]["name"]
    job_spec = copy.deepcopy(cronjob["spec"]["jobTemplate"]["spec"])
    labels = {**cronjob["metadata"]["labels"], **MANAGED_BY, STORE_LABEL: store.metadata.name}
    labels[BACKUP_LABEL] = backup_name
    pod_meta = job_spec["template"].setdefault("metadata", {})
    pod_meta["labels"] = {**pod_meta.get("labels", {}), BACKUP_LABEL: backup_name}
    container = job_spec["template"]["spec"]["containers"][0]
    container["args"] = ["backup", "--store", store.metadata.name, "--backup", backup_name]
    # The schedule only names scheduled MemoryBackups; this one has its name already.
    container["env"] = [v for v in container.get("env") or [] if v.get("name") != env.BACKUP_SCHEDULE]
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": backup_job_name(backup_name),
            "namespace": store.metadata.namespace,
            "labels": labels,
        },
        "spec": job_spec,
    }
    return plan.owned(job, backup)


async def start_backup(kube: Kube, settings: RenderSettings, backup: Mapping[str, Any]) -> None:
    """Run a MemoryBackup (made by hand or by the backup schedule): apply its Job and mark it Running."""
    meta = backup["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    if (backup.get("status") or {}).get("phase") in ("Running", "Completed", "Failed"):
        return
    store_name = backup["spec"]["storeRef"]["name"]
    store_body = await kube.get(STORE, namespace, store_name)
    error = None
    job = None
    if store_body is None:
        error = f"MemoryStore {store_name} does not exist in namespace {namespace}"
    else:
        try:
            store = MemoryStore.model_validate(store_body)
        except ValidationError:
            error = f"MemoryStore {store_name} has an invalid spec"
        else:
            job = backup_job(store, backup, settings)
            if job is None:
                error = f"MemoryStore {store_name} has no spec.backup: set a destination first"
    if error is not None or job is None:
        kopf.warn(event_target(backup), reason="BackupFailed", message=error or "no backup job")
        await kube.patch_status(
            BACKUP,
            namespace,
            name,
            {
                "phase": "Failed",
                "error": error,
                "stopTime": status.now_rfc3339(),
                "observedGeneration": meta.get("generation"),
            },
        )
        return
    running = await running_backup_jobs(kube, namespace, store_name)
    others = [n for n in running if n != job["metadata"]["name"]]
    if others:
        # Like the schedule (concurrencyPolicy Forbid): one backup of a store at a time.
        raise kopf.TemporaryError(f"waiting for backup Job {others[0]} of store {store_name}", delay=30)
    await kube.apply(plan.stamped(job))
    kopf.info(event_target(backup), reason="BackupStarted", message=f"started Job {job['metadata']['name']}")
    await kube.patch_status(
        BACKUP,
        namespace,
        name,
        {"phase": "Running", "startTime": status.now_rfc3339(), "observedGeneration": meta.get("generation")},
    )


async def running_backup_jobs(kube: Kube, namespace: str, store: str) -> list[str]:
    """Names of the store's backup Jobs that have not finished."""
    jobs = await kube.list(JOB, namespace, f"{selector({STORE_LABEL: store})},{BACKUP_LABEL}")
    return sorted(j["metadata"]["name"] for j in jobs if results.job_finished(j) is None)


def _epoch(rfc3339: str) -> float:
    return datetime.datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


async def record_job(kube: Kube, reconciler: Reconciler, job: Mapping[str, Any]) -> None:
    """Read a finished backup or expiration Job's summary into status, once per Job."""
    meta = job["metadata"]
    finished = results.job_finished(job)
    if finished is None or (meta.get("annotations") or {}).get(RESULT_ANNOTATION):
        return
    labels = meta.get("labels") or {}
    namespace = meta["namespace"]
    pods = await kube.list(POD, namespace, selector({"job-name": meta["name"]}))
    message = results.termination_message(pods)
    when = results.finish_time(job, status.now_rfc3339())
    if labels.get(POLICY_LABEL) and labels.get(STORE_LABEL):
        await _record_expiration(kube, reconciler, job, labels, message, finished, when)
    elif labels.get(BACKUP_LABEL) and labels.get(STORE_LABEL):
        await _record_backup(kube, reconciler, job, labels, message, finished, when)
    else:
        return
    await kube.patch(JOB, namespace, meta["name"], {"metadata": {"annotations": {RESULT_ANNOTATION: "true"}}})


async def _record_expiration(
    kube: Kube,
    reconciler: Reconciler,
    job: Mapping[str, Any],
    labels: Mapping[str, str],
    message: Mapping[str, Any] | None,
    finished: bool,
    when: str,
) -> None:
    namespace = job["metadata"]["namespace"]
    policy_name, store_name = labels[POLICY_LABEL], labels[STORE_LABEL]
    run = results.expiration_run(store_name, message, finished, when)
    ok = bool(run["succeeded"])
    metrics.EXPIRATION_RUNS.labels(
        namespace=namespace, store=store_name, policy=policy_name, result="success" if ok else "failure"
    ).inc()
    policy = await kube.get(POLICY, namespace, policy_name)
    if policy is not None:
        runs = results.upsert_run((policy.get("status") or {}).get("lastRuns") or [], run)
        failed = [r["store"] for r in runs if not r.get("succeeded", True)]
        last_run = status.condition(
            "LastRunSucceeded",
            not failed,
            "Succeeded" if not failed else "RunFailed",
            "the last run on every store succeeded"
            if not failed
            else "the last run failed on " + ", ".join(failed),
            policy["metadata"].get("generation"),
        )
        conditions = status.merge_conditions(
            (policy.get("status") or {}).get("conditions") or [], [last_run], status.now_rfc3339()
        )
        await kube.patch_status(POLICY, namespace, policy_name, {"lastRuns": runs, "conditions": conditions})
        if not ok:
            kopf.warn(
                event_target(policy),
                reason="ExpirationFailed",
                message=f"expiration on store {store_name} failed: {run.get('error')}",
            )
    verb = "would delete" if run["dryRun"] else "deleted"
    condition = status.condition(
        "ExpirationSucceeded",
        ok,
        "Succeeded" if ok else "RunFailed",
        f"policy {policy_name} {verb} {run['deleted']} memories at {when}"
        if ok
        else f"policy {policy_name} failed at {when}: {run.get('error')}",
        None,
    )
    store_body = await reconciler.update_store_status(
        namespace,
        store_name,
        {"lastExpiration": {"policy": policy_name, "time": when, "deleted": run["deleted"], "succeeded": ok}},
        [condition],
    )
    if store_body is not None and not ok:
        kopf.warn(event_target(store_body), reason="ExpirationFailed", message=condition["message"])


async def _record_backup(
    kube: Kube,
    reconciler: Reconciler,
    job: Mapping[str, Any],
    labels: Mapping[str, str],
    message: Mapping[str, Any] | None,
    finished: bool,
    when: str,
) -> None:
    namespace = job["metadata"]["namespace"]
    backup_name, store_name = labels[BACKUP_LABEL], labels[STORE_LABEL]
    started = (job.get("status") or {}).get("startTime")
    backup_status = results.backup_result(message, finished, when, started)
    ok = backup_status["phase"] == "Completed"
    backup = await kube.patch_status(BACKUP, namespace, backup_name, backup_status)
    if ok:
        metrics.BACKUP_LAST_SUCCESS.labels(namespace=namespace, store=store_name).set(_epoch(when))
    condition = status.condition(
        "LastBackupSucceeded",
        ok,
        "Completed" if ok else "BackupFailed",
        f"backup {backup_name} completed at {when}"
        if ok
        else f"backup {backup_name} failed: {backup_status.get('error')}",
        None,
    )
    store_body = await reconciler.update_store_status(
        namespace,
        store_name,
        {"lastBackup": {"name": backup_name, "phase": backup_status["phase"], "completionTime": when}},
        [condition],
    )
    if not ok:
        target = backup or store_body
        if target is not None:
            kopf.warn(event_target(target), reason="BackupFailed", message=condition["message"])
