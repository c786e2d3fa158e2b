"""What the expiration, backup, restore and collection jobs share: pod shape, identity, placement and
environment, and the ServiceAccount they run as."""

from __future__ import annotations

from typing import Any

from memory_operator import env
from memory_operator import labels as labels_
from memory_operator.api.store import JobsSpec, MemoryStore
from memory_operator.render import meta, names, server
from memory_operator.render import tls as tls_
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


# The jobs' resources when no store is given (`JobsSpec.resources`' default).
DEFAULT_RESOURCES = JobsSpec().resources


def container(
    name: str,
    image: str,
    args: list[str],
    variables: list[dict[str, Any]],
    mounts: list[dict[str, Any]],
    store: MemoryStore | None = None,
) -> dict[str, Any]:
    """A job's container, with the store's `jobs.resources`."""
    resources = store.spec.jobs.resources if store is not None else DEFAULT_RESOURCES
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
        "resources": meta.resources(resources),
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
    store: MemoryStore | None = None,
    images: meta.Images = meta.NO_IMAGES,
    tls_client: bool = False,
) -> dict[str, Any]:
    """A job's pod template; with `store`, placed and labelled as its `jobs.pod` says, pulling with
    the operator's and the store's pull secrets, and with TLS the store's CA bundle to verify its
    endpoints with (`tls_client`: and the jobs' client certificate, for a server that demands one)."""
    pod = store.spec.jobs.pod if store is not None else None
    if store is not None and tls_.enabled(store):
        tls_volumes, tls_mounts = tls_.job_volumes(store, tls_client)
        job_container = {
            **job_container,
            "env": [*job_container["env"], *tls_.job_env(store, tls_client)],
            "volumeMounts": [*job_container["volumeMounts"], *tls_mounts],
        }
        volumes = [*volumes, *tls_volumes]
    spec = {
        "restartPolicy": "Never",
        "serviceAccountName": service_account,
        "automountServiceAccountToken": needs_api,
        "enableServiceLinks": False,
        "securityContext": meta.pod_security_context(meta.OPERATOR_UID),
        "containers": [job_container],
        "volumes": [*volumes, meta.empty_dir("tmp", "1Gi")],
    }
    pull = meta.pull_secrets(store, images) if store is not None else []
    # Spread constraints count the pods of the same job kind (the component label) of the store.
    selector = {k: v for k, v in labels.items() if k in JOB_SELECTOR_KEYS}
    return {
        "metadata": meta.pod_metadata(labels, pod, annotations),
        "spec": meta.placed(spec, pod, selector, pull),
    }


# Labels of a job pod that say which store and which kind of job it is.
JOB_SELECTOR_KEYS = frozenset(
    {"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component", labels_.STORE}
)


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


def service_account(store: MemoryStore) -> Manifest:
    """The ServiceAccount the store's jobs run as, `<store>-jobs`: no API token is mounted from it, and
    its annotations (`jobs.serviceAccount.annotations`) give the jobs a cloud identity (IRSA, Workload
    Identity) for S3 backups without static keys."""
    manifest: Manifest = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta.metadata(
            store, names.jobs_service_account_name(store), meta.JOBS, meta.JOBS_COMPONENT
        ),
        "automountServiceAccountToken": False,
    }
    annotations = store.spec.jobs.service_account.annotations
    if annotations:
        manifest["metadata"]["annotations"] = dict(sorted(annotations.items()))
    return manifest
