"""Operator-wide handlers: settings at startup and the liveness probe."""

from __future__ import annotations

from typing import Any

import kopf

from memory_operator.controller import metrics
from memory_operator.controller.handlers import Context
from memory_operator.controller.settings import apply_kopf_settings


def register(registry: kopf.OperatorRegistry, context: Context) -> None:
    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        apply_kopf_settings(settings, context.options)

    @kopf.on.probe(id="stores", registry=registry)
    def stores(**_: Any) -> int:
        return len(metrics.PHASE_BOOK)
