"""What the expiration, backup and restore jobs share: pod shape, identity and environment."""

from __future__ import annotations

from typing import Any

from memory_operator import env
from memory_operator.api.store import MemoryStore
from memory_operator.render import meta, names, server
from memory_operator.render.meta import Manifest

# Fail a stuck run instead of blocking the schedule (Forbid skips runs while one is active).
STARTING_DEADLINE_SECONDS = 600
HISTORY_LIMIT = 3
# Finished Jobs stay a day: long enough for the controller to read their summary, and for a person.
TTL_SECONDS_AFTER_FINISHED = 86400


def identity_env(store: MemoryStore) -> list[dict[str, Any]]:
    return [
        meta.env_value(env.STORE_NAME, store.metadata.name),
        meta.env_value(env.STORE_NAMESPACE, store.metadata.namespace),
        meta.env_value(env.SERVER_FLAVOR, store.spec.server.flavor.value),
    ]


def container(
    name: str,
    image: str,
    args: list[str],
    variables: list[dict[str, Any]],
    mounts: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "env": [
            *variables,
            meta.env_value("HOME", env.SCRATCH_DIR),
            meta.env_value("PYTHONDONTWRITEBYTECODE", "1"),
        ],
        "resources": meta.JOB_RESOURCES,
        "volumeMounts": [*mounts, {"name": "tmp", "mountPath": "/tmp"}],
        "securityContext": meta.container_security_context(),
        # The job's summary (JSON) goes to the termination log, where the controller reads it.
        "terminationMessagePath": env.TERMINATION_LOG,
        "terminationMessagePolicy": "File",
    }


def pod_template(
    labels: dict[str, str],
    service_account: str,
    job_container: dict[str, Any],
    volumes: list[dict[str, Any]],
    *,
    needs_api: bool,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    template_meta: dict[str, Any] = {"labels": labels}
    if annotations:
        template_meta["annotations"] = annotations
    return {
        "metadata": template_meta,
        "spec": {
            "restartPolicy": "Never",
            "serviceAccountName": service_account,
            "automountServiceAccountToken": needs_api,
            "enableServiceLinks": False,
            "securityContext": meta.pod_security_context(meta.OPERATOR_UID),
            "containers": [job_container],
            "volumes": [*volumes, meta.empty_dir("tmp", "1Gi")],
        },
    }


# Exit code 1 is a run that failed and said why in its summary (a missing backup, a checksum mismatch,
# an unreachable Qdrant): the same pod again gives the same answer, so the Job fails at once and the
# summary reaches status without waiting for the retries' back-off. Crashes by signal (OOM kill) and
# evictions are retried within the back-off limit.
REPORTED_FAILURE_EXIT_CODE = 1


def pod_failure_policy(container_name: str) -> dict[str, Any]:
    return {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": container_name,
                    "operator": "In",
                    "values": [REPORTED_FAILURE_EXIT_CODE],
                },
            },
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        ]
    }


def job_spec(
    template: dict[str, Any], *, backoff_limit: int, active_deadline_seconds: int, ttl: int | None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "backoffLimit": backoff_limit,
        "activeDeadlineSeconds": active_deadline_seconds,
        "podFailurePolicy": pod_failure_policy(template["spec"]["containers"][0]["name"]),
    }
    if ttl is not None:
        spec["ttlSecondsAfterFinished"] = ttl
    spec["template"] = template
    return spec


def cronjob(
    metadata: dict[str, Any], schedule: str, job: dict[str, Any], *, suspend: bool = False
) -> Manifest:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata,
        "spec": {
            "schedule": schedule,
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",
            "suspend": suspend,
            "startingDeadlineSeconds": STARTING_DEADLINE_SECONDS,
            "successfulJobsHistoryLimit": HISTORY_LIMIT,
            "failedJobsHistoryLimit": HISTORY_LIMIT,
            "jobTemplate": {"metadata": {"labels": metadata["labels"]}, "spec": job},
        },
    }


def server_env(store: MemoryStore) -> list[dict[str, Any]]:
    """Where the memory server is, and the read-write key to call it with."""
    return [
        meta.env_value(env.SERVER_URL, names.server_url(store)),
        server.client_key_env(store)[0],
    ]
