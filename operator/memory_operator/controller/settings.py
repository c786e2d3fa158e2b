"""Options of `memory-operator run` and the Kopf settings derived from them."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass

import kopf

from memory_operator import labels
from memory_operator.controller import cache

# Kopf keeps its progress and last-handled spec under a subdomain of ours, so that our own annotations
# (e.g. memory-operator.io/paused) stay part of what Kopf compares to detect changes.
KOPF_PREFIX = f"kopf.{labels.PREFIX}"
FINALIZER = f"{labels.PREFIX}/finalizer"
# How long an object's worker waits for more events before it frees its slot. Kopf's default (5 s)
# admits a burst of new objects in waves; events of one object still come together within it.
IDLE_TIMEOUT_SECONDS = 1.0
# A store deleted while one of its timers runs keeps its finalizer until the timer returns; Kopf looks
# again after this long (its default, 60 s, holds every such deletion a minute).
TIMER_EXIT_POLL_SECONDS = 2.0


@dataclass(frozen=True)
class Options:
    namespaces: tuple[str, ...]
    all_namespaces: bool
    liveness_port: int
    metrics_port: int
    bind_address: str
    job_image: str | None
    operator_namespace: str | None
    log_format: str
    verbose: bool
    resync_seconds: float
    schedule_check_seconds: float
    peering: str | None
    peering_lifetime: int
    worker_limit: int | None
    qdrant_url_template: str | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Options:
        namespaces = tuple(ns for item in args.namespace or [] for ns in item.split(",") if ns)
        return cls(
            namespaces=namespaces,
            all_namespaces=bool(args.all_namespaces) or not namespaces,
            liveness_port=int(args.liveness_port),
            metrics_port=int(args.metrics_port),
            bind_address=args.bind_address,
            job_image=args.job_image or None,
            operator_namespace=args.operator_namespace or None,
            log_format=args.log_format,
            verbose=bool(args.verbose),
            resync_seconds=float(args.resync_seconds),
            schedule_check_seconds=float(args.schedule_check_seconds),
            peering=args.peering or None,
            peering_lifetime=int(args.peering_lifetime),
            worker_limit=int(args.worker_limit) if args.worker_limit else None,
            qdrant_url_template=getattr(args, "qdrant_url_template", None) or None,
        )


def apply_kopf_settings(settings: kopf.OperatorSettings, options: Options) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=KOPF_PREFIX, key="last-handled-configuration"
    )
    # Silently dead watch streams are the most common failure of Kopf operators: reconnect regularly.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    settings.watching.reconnect_backoff = 1.0
    settings.networking.request_timeout = 60
    settings.queueing.worker_limit = options.worker_limit
    settings.batching.idle_timeout = IDLE_TIMEOUT_SECONDS
    settings.background.cancellation_polling = TIMER_EXIT_POLL_SECONDS
    if options.peering:
        settings.peering.mandatory = True
        settings.peering.lifetime = options.peering_lifetime
    cache.configure_watches(settings)
    # Only explicit kopf.event()/kopf.warn() calls become Events, not every log line.
    settings.posting.loggers = False
    settings.posting.level = logging.INFO
    settings.posting.reporting_component = "memory-operator"
    settings.posting.event_name_prefix = "memory-operator-"
