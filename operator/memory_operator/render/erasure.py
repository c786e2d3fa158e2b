"""Erasures: the store's erasures Secret, and the Job of a MemoryErasure (`memory-operator erase`).

Jobs never talk to the Kubernetes API, so the subjects they erase come from the operator: the store's
Secret `<store>-erasures` holds `erasures.json` (`ErasuresFile`) with the erasures whose Jobs run now
and, while a restore runs, those it re-applies. Subject ids are personal data: a Secret (which the
`view` role does not read), never a Job's arguments, environment or labels. Once nothing runs the
Secret is rendered empty (the operator deletes no Secret).

An erasure's Job is named after its MemoryErasure and carries the attempt it is (an annotation on the
Job): while the store is down, the operator deletes the failed Job after a growing delay and renders
the next attempt.
"""

from __future__ import annotations

import base64
import json
import posixpath
from collections.abc import Sequence
from typing import Any

from memory_operator import env, labels
from memory_operator.api.erasure import ErasureEntry, ErasuresFile
from memory_operator.api.store import MemoryStore
from memory_operator.render import jobs, meta, names, server
from memory_operator.render.meta import Manifest

# `app.kubernetes.io/component` of the Job's pod (the NetworkPolicy lets it reach Qdrant).
COMPONENT = "erasure"
CONTAINER = "erase"
ERASURES_KEY = posixpath.basename(env.ERASURES_PATH)
VOLUME = "erasures"
# Qdrant deletes by filter server-side: minutes even for a large collection.
ACTIVE_DEADLINE_SECONDS = 3600
# Crashes (an OOM kill, an eviction) are retried here; a run that reports a failure ends the Job (the
# operator runs a store that was down again itself, later).
BACKOFF_LIMIT = 2


def erasures_file(run: Sequence[ErasureEntry], reapply: Sequence[ErasureEntry]) -> str:
    """The file's JSON: the same erasures, the same bytes."""
    document = ErasuresFile(
        erase=sorted(run, key=lambda e: e.name), reapply=sorted(reapply, key=lambda e: e.name)
    )
    return json.dumps(document.wire(), sort_keys=True, separators=(",", ":"))


def erasures_secret(
    store: MemoryStore, run: Sequence[ErasureEntry], reapply: Sequence[ErasureEntry]
) -> Manifest:
    """The Secret the store's erasure and restore Jobs mount."""
    text = erasures_file(run, reapply)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta.metadata(store, names.erasures_secret_name(store), meta.JOBS, COMPONENT),
        "type": "Opaque",
        # `data` (base64) is what the API server stores, so a converged Secret compares equal.
        "data": {ERASURES_KEY: base64.b64encode(text.encode()).decode()},
    }


def volume(store: MemoryStore) -> dict[str, Any]:
    return {"name": VOLUME, "secret": {"secretName": names.erasures_secret_name(store)}}


def volume_mount() -> dict[str, Any]:
    return {"name": VOLUME, "mountPath": env.ERASURES_DIR, "readOnly": True}


def erasure_job(
    store: MemoryStore,
    erasure: str,
    attempt: int,
    image: str,
    service_account: str,
    images: meta.Images = meta.NO_IMAGES,
) -> Manifest:
    """The Job running MemoryErasure `erasure` on the store, attempt `attempt` (1 for the first)."""
    job_labels = meta.labels(store, meta.JOBS, COMPONENT, **{labels.ERASURE: erasure})
    variables = [
        *server.qdrant_env(store),
        *jobs.identity_env(store),
        meta.env_value(env.ERASURES_FILE, env.ERASURES_PATH),
    ]
    container = jobs.container(
        CONTAINER, image, ["erase", "--erasure", erasure], variables, [volume_mount()], store
    )
    # It talks to Qdrant only.
    template = jobs.pod_template(
        job_labels, service_account, container, [volume(store)], needs_api=False, store=store, images=images
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": names.erasure_job_name(erasure),
            "namespace": store.metadata.namespace,
            "labels": job_labels,
            # On the Job only: a new attempt is a new Job (its pod template cannot change).
            "annotations": {labels.ERASURE_ATTEMPT: str(attempt)},
        },
        "spec": jobs.job_spec(
            template,
            backoff_limit=BACKOFF_LIMIT,
            active_deadline_seconds=ACTIVE_DEADLINE_SECONDS,
            ttl=jobs.TTL_SECONDS_AFTER_FINISHED,
        ),
    }


def render(
    store: MemoryStore,
    image: str,
    service_account: str,
    *,
    run: Sequence[tuple[ErasureEntry, int]] = (),
    reapply: Sequence[ErasureEntry] | None = None,
    secret: bool = False,
    images: meta.Images = meta.NO_IMAGES,
) -> list[Manifest]:
    """The erasures Secret (when `secret`, or anything runs) and a Job per erasure of `run`, with its
    attempt. `reapply`: what a running restore re-applies."""
    if not (secret or run or reapply is not None):
        return []
    manifests = [erasures_secret(store, [entry for entry, _ in run], reapply or ())]
    for entry, attempt in run:
        manifests.append(erasure_job(store, entry.name, attempt, image, service_account, images))
    return manifests
