"""MemoryBackup handlers and the results of the Jobs the operator's CronJobs and backups run."""

from __future__ import annotations

from typing import Any

import kopf

from memory_operator.api.common import GROUP, VERSION
from memory_operator.controller import outcomes
from memory_operator.controller.handlers import Context
from memory_operator.controller.settings import BACKUP_LABEL, POLICY_LABEL
from memory_operator.render.backup import BACKUP_ACTIVE_DEADLINE_SECONDS

BACKUPS = (GROUP, VERSION, "memorybackups")
WAIT_FOR_OTHER_BACKUP_SECONDS = BACKUP_ACTIVE_DEADLINE_SECONDS + 600


def register(registry: kopf.OperatorRegistry, context: Context) -> None:
    kube, reconciler = context.kube, context.reconciler

    # A backup waits while another of its store runs (up to that one's deadline), then gives up.
    @kopf.on.resume(*BACKUPS, registry=registry, backoff=10, timeout=WAIT_FOR_OTHER_BACKUP_SECONDS)
    @kopf.on.create(*BACKUPS, registry=registry, backoff=10, timeout=WAIT_FOR_OTHER_BACKUP_SECONDS)
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
