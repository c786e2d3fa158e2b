"""The recall canary: a CronJob that runs `memory-operator canary` against the store's own server.

Rendered when the store has `spec.monitoring.canary` (the builtin server only). The Job calls the
server's API with the store's read-write key, as an agent would, and talks to nothing else: no Qdrant,
no Kubernetes API. Its summary, the termination message, becomes the store's `status.lastCanary`.
"""

from __future__ import annotations

from memory_operator.api.store import MemoryStore, ServerFlavor
from memory_operator.render import jobs, meta, names
from memory_operator.render.meta import Manifest

CONTAINER = "canary"
# A run writes a few dozen memories and asks as many questions: minutes at most, even on a slow
# embedder; a run past this is a failure worth reporting.
ACTIVE_DEADLINE_SECONDS = 900
# The canary measures the store as it is: a failed run is not retried (it would hide a flaky store).
BACKOFF_LIMIT = 0


def _labels(store: MemoryStore) -> dict[str, str]:
    return meta.labels(store, meta.JOBS, meta.CANARY)


def arguments(store: MemoryStore) -> list[str]:
    canary = store.spec.monitoring.canary if store.spec.monitoring else None
    assert canary is not None, "a store with a canary"
    return [
        "canary",
        "--top-k",
        str(canary.top_k),
        "--min-recall",
        f"{canary.min_recall:g}",
        "--max-p95-ms",
        str(canary.max_latency_p95_milliseconds),
    ]


def cronjob(
    store: MemoryStore, image: str, service_account: str, images: meta.Images = meta.NO_IMAGES
) -> Manifest:
    canary = store.spec.monitoring.canary if store.spec.monitoring else None
    assert canary is not None, "a store with a canary"
    container = jobs.container(
        CONTAINER,
        image,
        arguments(store),
        [*jobs.server_env(store), *jobs.identity_env(store)],
        [],
        store,
    )
    job_labels = _labels(store)
    # It calls the server as a client would: under mutual TLS with the jobs' client certificate.
    template = jobs.pod_template(
        job_labels,
        service_account,
        container,
        [],
        needs_api=False,
        store=store,
        images=images,
        tls_client=True,
    )
    job = jobs.job_spec(
        template,
        backoff_limit=BACKOFF_LIMIT,
        active_deadline_seconds=ACTIVE_DEADLINE_SECONDS,
        ttl=jobs.TTL_SECONDS_AFTER_FINISHED,
    )
    metadata = {
        "name": names.canary_cronjob_name(store),
        "namespace": store.metadata.namespace,
        "labels": job_labels,
    }
    return jobs.cronjob(metadata, canary.schedule, job, suspend=canary.suspend)


def render(
    store: MemoryStore, image: str, service_account: str, images: meta.Images = meta.NO_IMAGES
) -> list[Manifest]:
    monitoring = store.spec.monitoring
    if monitoring is None or monitoring.canary is None or store.spec.server.flavor != ServerFlavor.builtin:
        return []
    return [cronjob(store, image, service_account, images)]
