"""The upgrade check Job of a rolling Qdrant upgrade: `memory-operator upgrade-check`.

The operator moves Qdrant to a new image one node at a time, the highest ordinal first. After a node
restarted on it and is ready, this Job waits until every shard replica is active again on every peer;
only when it succeeds does the next node restart. Named after the image and the node's ordinal, so each
step has its own Job (a finished Job's pod template cannot change).
"""

from __future__ import annotations

from typing import Any

from memory_operator import env
from memory_operator import labels as labels_module
from memory_operator.api.store import MemoryStore
from memory_operator.render import jobs, meta, names, server
from memory_operator.render.meta import Manifest

# `app.kubernetes.io/component` of the Job's pod (the NetworkPolicy lets it reach Qdrant).
COMPONENT = "upgrade"
CONTAINER = "upgrade-check"
# Waiting for Qdrant to synchronise the restarted node's replicas: as long as copying its largest shard.
WAIT_SECONDS = 3600
ACTIVE_DEADLINE_SECONDS = WAIT_SECONDS + 600
BACKOFF_LIMIT = 2


def check_job(
    store: MemoryStore,
    image: str,
    ordinal: int,
    jobs_image: str,
    service_account: str,
    images: meta.Images = meta.NO_IMAGES,
) -> Manifest:
    """The check after node `ordinal` restarted on the Qdrant `image`."""
    labels = meta.labels(
        store, meta.JOBS, COMPONENT, **{labels_module.QDRANT_UPGRADE: names.image_digest(image)}
    )
    variables: list[dict[str, Any]] = [
        *server.qdrant_env(store),
        meta.env_value(env.QDRANT_PEERS, ",".join(names.qdrant_peer_urls(store))),
        *jobs.identity_env(store),
    ]
    args = ["upgrade-check", "--wait-timeout", str(WAIT_SECONDS)]
    container = jobs.container(CONTAINER, jobs_image, args, variables, [], store)
    # It talks to Qdrant only.
    template = jobs.pod_template(
        labels, service_account, container, [], needs_api=False, store=store, images=images
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": names.upgrade_check_job_name(store, image, ordinal),
            "namespace": store.metadata.namespace,
            "labels": labels,
        },
        "spec": jobs.job_spec(
            template, backoff_limit=BACKOFF_LIMIT, active_deadline_seconds=ACTIVE_DEADLINE_SECONDS, ttl=None
        ),
    }
