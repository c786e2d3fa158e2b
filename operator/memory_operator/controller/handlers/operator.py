"""Operator-wide handlers: login, settings and the informed kinds' streams at startup, the liveness probe."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from memory_operator.controller import memory, metrics
from memory_operator.controller.handlers import Context
from memory_operator.controller.settings import apply_kopf_settings


def register(registry: kopf.OperatorRegistry, context: Context) -> None:
    # An explicit registry gets none of Kopf's fallback logins: log in as the official client does
    # (the in-cluster service account, else KUBECONFIG), the same way `Kube` is configured.
    @kopf.on.login(registry=registry, errors=kopf.ErrorsMode.PERMANENT)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        apply_kopf_settings(settings, context.options, context.diffbase)
        memory.tune_collector()
        options = context.options
        context.informers.start(settings, None if options.all_namespaces else options.namespaces)
        # Kept in the memo: the event loop holds tasks only weakly.
        memo["memory_trimmer"] = asyncio.get_running_loop().create_task(
            memory.trim_after_work(
                lambda: context.reconciler.reconciles, busy=lambda: context.reconciler.under_way > 0
            )
        )

    @kopf.on.cleanup(registry=registry)
    async def stop_informers(**_: Any) -> None:
        await context.informers.stop()

    @kopf.on.probe(id="stores", registry=registry)
    def stores(**_: Any) -> int:
        return len(metrics.PHASE_BOOK)
