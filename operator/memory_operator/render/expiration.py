"""Expiration: per selecting, non-suspended MemoryPolicy, its spec in a ConfigMap and a CronJob."""

from __future__ import annotations

import json

from memory_operator import env, labels
from memory_operator.api.policy import MemoryPolicy
from memory_operator.api.store import MemoryStore
from memory_operator.render import jobs, meta, names, server
from memory_operator.render.meta import Manifest

POLICY_KEY = env.POLICY_PATH.rsplit("/", 1)[-1]
ACTIVE_DEADLINE_SECONDS = 3600
BACKOFF_LIMIT = 2


def policy_json(policy: MemoryPolicy) -> str:
    return json.dumps(policy.spec.wire(), sort_keys=True, indent=2) + "\n"


def _labels(store: MemoryStore, policy: MemoryPolicy) -> dict[str, str]:
    return meta.labels(store, meta.JOBS, meta.EXPIRATION, **{labels.POLICY: policy.metadata.name})


def configmap(store: MemoryStore, policy: MemoryPolicy) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": names.expiration_configmap_name(store, policy.metadata.name),
            "namespace": store.metadata.namespace,
            "labels": _labels(store, policy),
        },
        "data": {POLICY_KEY: policy_json(policy)},
    }


def cronjob(
    store: MemoryStore,
    policy: MemoryPolicy,
    image: str,
    service_account: str,
    images: meta.Images = meta.NO_IMAGES,
) -> Manifest:
    config = configmap(store, policy)
    args = ["expire", "--policy-file", env.POLICY_PATH]
    if policy.spec.dry_run:
        args.append("--dry-run")
    variables = [
        *server.qdrant_env(store),
        *jobs.server_env(store),
        *jobs.identity_env(store),
        meta.env_value(env.POLICY_NAME, policy.metadata.name),
        meta.env_value(env.POLICY_FILE, env.POLICY_PATH),
    ]
    container = jobs.container(
        "expire",
        image,
        args,
        variables,
        [{"name": "policy", "mountPath": env.CONFIG_DIR, "readOnly": True}],
        store,
    )
    job_labels = _labels(store, policy)
    template = jobs.pod_template(
        job_labels,
        service_account,
        container,
        [{"name": "policy", "configMap": {"name": config["metadata"]["name"]}}],
        # It talks to Qdrant and the server only.
        needs_api=False,
        annotations={labels.CONFIG_CHECKSUM: meta.checksum(config["data"])},
        store=store,
        images=images,
    )
    job = jobs.job_spec(
        template,
        backoff_limit=BACKOFF_LIMIT,
        active_deadline_seconds=ACTIVE_DEADLINE_SECONDS,
        ttl=jobs.TTL_SECONDS_AFTER_FINISHED,
    )
    metadata = {
        "name": names.expiration_cronjob_name(store, policy.metadata.name),
        "namespace": store.metadata.namespace,
        "labels": job_labels,
    }
    return jobs.cronjob(metadata, policy.spec.schedule, job)


def render(
    store: MemoryStore,
    policies: list[MemoryPolicy],
    image: str,
    service_account: str,
    images: meta.Images = meta.NO_IMAGES,
) -> list[Manifest]:
    manifests: list[Manifest] = []
    for policy in sorted(policies, key=lambda p: p.metadata.name):
        if policy.spec.suspend:
            continue
        manifests += [configmap(store, policy), cronjob(store, policy, image, service_account, images)]
    return manifests
