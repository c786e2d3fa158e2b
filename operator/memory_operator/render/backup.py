"""Backups: the Job taking one MemoryBackup, the claim backups go to, and the restore Job of a new store.

The operator creates MemoryBackups on the store's schedule and runs one Job per backup. The backup job
prunes old backups (files and MemoryBackups), so it uses the job ServiceAccount; snapshots in cluster
mode hold only the node's own shards, so it gets every node's URL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from memory_operator import env, labels
from memory_operator.api.common import API_VERSION
from memory_operator.api.store import BackupDestination, BackupSpec, MemoryStore
from memory_operator.render import erasure, jobs, meta, names, server
from memory_operator.render.meta import Manifest

BACKUP_ACTIVE_DEADLINE_SECONDS = 6 * 3600
BACKUP_BACKOFF_LIMIT = 1
RESTORE_ACTIVE_DEADLINE_SECONDS = 6 * 3600
RESTORE_BACKOFF_LIMIT = 3
BACKUP_VOLUME = "backups"


def _labels(store: MemoryStore) -> dict[str, str]:
    return meta.labels(store, meta.JOBS, meta.BACKUP)


def destination_env(store: MemoryStore, destination: BackupDestination) -> list[dict[str, Any]]:
    if destination.s3 is not None:
        s3 = destination.s3
        variables = [
            meta.env_value(env.BACKUP_S3_BUCKET, s3.bucket),
            meta.env_value(env.BACKUP_S3_PREFIX, s3.prefix),
        ]
        if s3.endpoint:
            variables.append(meta.env_value(env.BACKUP_S3_ENDPOINT, s3.endpoint))
        if s3.region:
            variables.append(meta.env_value(env.BACKUP_S3_REGION, s3.region))
        if s3.credentials_secret:
            variables += [
                meta.env_secret("AWS_ACCESS_KEY_ID", s3.credentials_secret, "AWS_ACCESS_KEY_ID"),
                meta.env_secret("AWS_SECRET_ACCESS_KEY", s3.credentials_secret, "AWS_SECRET_ACCESS_KEY"),
            ]
        # Otherwise the AWS SDK finds credentials itself: the ServiceAccount's web identity token
        # (IRSA, injected by EKS), EKS Pod Identity, or the node's role.
        return variables
    return [
        meta.env_value(env.BACKUP_DIR, env.BACKUP_MOUNT_PATH),
        meta.env_value(env.BACKUP_CLAIM_NAME, names.backup_claim_name(store)),
    ]


def destination_volumes(
    store: MemoryStore, destination: BackupDestination
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Volumes and mounts of the destination: the claim for `pvc`, none for `s3`."""
    if destination.pvc is None:
        return [], []
    volume = {"name": BACKUP_VOLUME, "persistentVolumeClaim": {"claimName": names.backup_claim_name(store)}}
    return [volume], [{"name": BACKUP_VOLUME, "mountPath": env.BACKUP_MOUNT_PATH}]


def _common_env(store: MemoryStore) -> list[dict[str, Any]]:
    return [
        *server.qdrant_env(store),
        meta.env_value(env.QDRANT_PEERS, ",".join(names.qdrant_peer_urls(store))),
        *jobs.identity_env(store),
    ]


def retention_env(backup: BackupSpec) -> list[dict[str, Any]]:
    variables = [meta.env_value(env.BACKUP_MAX_COUNT, backup.retention.max_count)]
    if backup.retention.max_age:
        variables.append(meta.env_value(env.BACKUP_MAX_AGE, backup.retention.max_age))
    return variables


def claim(store: MemoryStore) -> Manifest | None:
    """`<store>-backups`, unless the destination is S3 or names an existing claim."""
    backup = store.spec.backup
    if backup is None or backup.destination.pvc is None or backup.destination.pvc.claim_name:
        return None
    pvc = backup.destination.pvc
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": pvc.size}},
    }
    if pvc.storage_class_name:
        spec["storageClassName"] = pvc.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta.metadata(store, names.backup_claim_name(store), meta.JOBS, meta.BACKUP),
        "spec": spec,
    }


def backup_job(
    store: MemoryStore,
    backup_name: str,
    image: str,
    service_account: str,
    images: meta.Images = meta.NO_IMAGES,
) -> Manifest | None:
    """The Job taking MemoryBackup `backup_name` of the store, to its `spec.backup.destination`.

    `None` without `spec.backup` (no destination). The controller runs one at a time per store; the Job
    is owned by its MemoryBackup.
    """
    backup = store.spec.backup
    if backup is None:
        return None
    volumes, mounts = destination_volumes(store, backup.destination)
    variables = [
        *_common_env(store),
        *destination_env(store, backup.destination),
        *retention_env(backup),
    ]
    args = ["backup", "--store", store.metadata.name, "--backup", backup_name]
    container = jobs.container("backup", image, args, variables, mounts, store)
    job_labels = {**_labels(store), labels.BACKUP: backup_name}
    template = jobs.pod_template(
        job_labels, service_account, container, volumes, needs_api=False, store=store, images=images
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": names.backup_job_name(backup_name),
            "namespace": store.metadata.namespace,
            "labels": job_labels,
        },
        "spec": jobs.job_spec(
            template,
            backoff_limit=BACKUP_BACKOFF_LIMIT,
            active_deadline_seconds=BACKUP_ACTIVE_DEADLINE_SECONDS,
            ttl=jobs.TTL_SECONDS_AFTER_FINISHED,
        ),
    }


@dataclass(frozen=True)
class BackupSource:
    """What the MemoryBackup a store restores from says: the store it was taken of, and where it is."""

    store: str | None = None
    location: str | None = None


def restore_job(
    store: MemoryStore,
    image: str,
    service_account: str,
    attempt: str | None = None,
    images: meta.Images = meta.NO_IMAGES,
    source: BackupSource = BackupSource(),
) -> Manifest | None:
    """The Job restoring `bootstrap.fromBackup`; the controller runs it before starting the server.

    Without `spec.backup` the job has no destination settings and finds the backup at the `source`
    location the MemoryBackup gives. It keeps no TTL: a finished restore Job that vanished would be
    rendered, and so run, again.
    """
    bootstrap = store.spec.bootstrap
    if bootstrap is None or bootstrap.from_backup is None:
        return None
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    variables = _common_env(store)
    if store.spec.backup is not None:
        volumes, mounts = destination_volumes(store, store.spec.backup.destination)
        variables += destination_env(store, store.spec.backup.destination)
    if source.store:
        variables.append(meta.env_value(env.BACKUP_SOURCE_STORE, source.store))
    if source.location:
        variables.append(meta.env_value(env.BACKUP_LOCATION, source.location))
    # The erasures to re-apply before the server starts, from the store's erasures Secret.
    variables.append(meta.env_value(env.ERASURES_FILE, env.ERASURES_PATH))
    volumes.append(erasure.volume(store))
    mounts.append(erasure.volume_mount())
    args = ["restore", "--store", store.metadata.name, "--backup", bootstrap.from_backup.name]
    container = jobs.container("restore", image, args, variables, mounts, store)
    pod_labels = _labels(store)
    template = jobs.pod_template(
        pod_labels, service_account, container, volumes, needs_api=False, store=store, images=images
    )
    # On the Job only: its pod template is immutable, and the controller watches Jobs, not pods.
    metadata: dict[str, Any] = {
        "name": names.restore_job_name(store),
        "namespace": store.metadata.namespace,
        "labels": {**pod_labels, labels.RESTORE: bootstrap.from_backup.name},
    }
    if attempt:
        # The `retry-restore` annotation value this Job answers (a new value runs a new Job).
        metadata["annotations"] = {labels.RESTORE_ATTEMPT: attempt}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": jobs.job_spec(
            template,
            backoff_limit=RESTORE_BACKOFF_LIMIT,
            active_deadline_seconds=RESTORE_ACTIVE_DEADLINE_SECONDS,
            ttl=None,
        ),
    }


def render(
    store: MemoryStore,
    image: str,
    service_account: str,
    *,
    backups: Sequence[str] = (),
    restore: bool = False,
    restore_attempt: str | None = None,
    restore_source: BackupSource = BackupSource(),
    images: meta.Images = meta.NO_IMAGES,
) -> list[Manifest]:
    """The backup claim, the Jobs of `backups` (MemoryBackups to take now) and, when `restore`, the
    restore Job."""
    manifests: list[Manifest] = []
    backup_claim = claim(store)
    if backup_claim is not None:
        manifests.append(backup_claim)
    for name in backups:
        job = backup_job(store, name, image, service_account, images)
        if job is not None:
            manifests.append(job)
    if restore:
        job = restore_job(store, image, service_account, restore_attempt, images, restore_source)
        if job is not None:
            manifests.append(job)
    return manifests


def scheduled_backup(store: MemoryStore, name: str) -> Manifest:
    """The MemoryBackup the operator creates for a tick of the store's `spec.backup.schedule`."""
    return _operator_backup(store, name, {labels.SCHEDULED: "true"})


def upgrade_backup(store: MemoryStore, image: str) -> Manifest:
    """The MemoryBackup the operator takes before Qdrant moves to `image`."""
    name = names.upgrade_backup_name(store, image)
    return _operator_backup(store, name, {labels.QDRANT_UPGRADE: names.image_digest(image)})


def _operator_backup(store: MemoryStore, name: str, extra_labels: dict[str, str]) -> Manifest:
    """A MemoryBackup of the store made by the operator. Not owned by the store: backups outlive it
    unless `deletionPolicy: Delete`."""
    return {
        "apiVersion": API_VERSION,
        "kind": "MemoryBackup",
        "metadata": {
            "name": name,
            "namespace": store.metadata.namespace,
            "labels": {
                "app.kubernetes.io/part-of": meta.PART_OF,
                labels.COMPONENT_KEY: meta.BACKUP,
                labels.STORE: store.metadata.name,
                **extra_labels,
            },
        },
        "spec": {"storeRef": {"name": store.metadata.name}},
    }
