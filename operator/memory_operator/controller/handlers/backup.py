"""MemoryBackup handlers and the results of the Jobs the operator's CronJobs and backups run."""

from __future__ import annotations

from typing import Any

import kopf

from memory_operator.api.common import GROUP, VERSION
from memory_operator.controller import outcomes
from memory_operator.controller.handlers import Context
from memory_operator.controller.settings import BACKUP_LABEL, POLICY_LABEL

BACKUPS = (GROUP, VERSION, "memorybackups")


def register(registry: kopf.OperatorRegistry, context: Context) -> None:
    kube, reconciler = context.kube, context.reconciler

    @kopf.on.resume(*BACKUPS, registry=registry, retries=5, backoff=10, timeout=300)
    @kopf.on.create(*BACKUPS, registry=registry, retries=5, backoff=10, timeout=300)
    async def run_backup(body: kopf.Body, **_: Any) -> None:
        await outcomes.start_backup(kube, context.render_settings, dict(body))

    @kopf.on.event(
        "batch", "v1", "jobs", registry=registry, id="expiration-job", labels={POLICY_LABEL: kopf.PRESENT}
    )
    @kopf.on.event(
        "batch", "v1", "jobs", registry=registry, id="backup-job", labels={BACKUP_LABEL: kopf.PRESENT}
    )
    async def job_changed(type: str, body: kopf.Body, **_: Any) -> None:
        if type != "DELETED":
            await outcomes.record_job(kube, reconciler, dict(body))
