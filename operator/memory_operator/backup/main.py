"""`memory-operator backup`: create a scheduled MemoryBackup, or take one backup of a store.

Without `--backup` (the store's backup CronJob) it only creates a MemoryBackup named after the time the
schedule fired, and the operator answers with a Job running `backup --store S --backup B`, which takes the
backup: a snapshot of each collection on each Qdrant node, copied to the destination with its SHA-256,
then `manifest.json`, then retention pruning: the files of the store's oldest backups, then their
MemoryBackups, named like their folders. Its summary (a MemoryBackup status) goes to stdout and to
the termination log, from which the operator copies it into the MemoryBackup's status.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from memory_operator import env

logger = logging.getLogger("memory_operator.backup")

# Seconds to connect to and to hear from the API when pruning MemoryBackups: pruning must not hold up
# a backup that is already taken.
PRUNE_API_TIMEOUT = (5, 15)
# Summary keys for the job's log only: a MemoryBackup status has no field for them.
PRUNED_KEY = "pruned"
NOT_DELETED_KEY = "memoryBackupsNotDeleted"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Qdrant, the destination and retention come from the environment: "
        f"{env.QDRANT_URL} or {env.QDRANT_PEERS}, {env.QDRANT_API_KEY}, {env.COLLECTION}, "
        f"{env.BACKUP_S3_BUCKET}/{env.BACKUP_S3_PREFIX}/{env.BACKUP_S3_ENDPOINT}/{env.BACKUP_S3_REGION} "
        f"(with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) or {env.BACKUP_DIR}, "
        f"{env.BACKUP_MAX_COUNT} and {env.BACKUP_MAX_AGE}."
    )
    parser.add_argument(
        "--store",
        default=env.get(env.STORE_NAME),
        help=f"the MemoryStore (default {env.STORE_NAME})",
    )
    parser.add_argument(
        "--backup",
        default=None,
        help="the MemoryBackup to take; without it, only create the scheduled MemoryBackup",
    )
    parser.add_argument(
        "--namespace",
        default=None,
        help=f"namespace of the store (default {env.STORE_NAMESPACE}, else the pod's)",
    )
    parser.add_argument(
        "--schedule",
        default=env.get(env.BACKUP_SCHEDULE),
        help=f"cron schedule the scheduled backup's name is derived from (default {env.BACKUP_SCHEDULE})",
    )
    parser.add_argument(
        "--termination-log",
        type=Path,
        default=Path(env.TERMINATION_LOG),
        help=f"file for the JSON summary the operator reads (default {env.TERMINATION_LOG})",
    )
    parser.add_argument("--verbose", action="store_true", help="log debug messages")


def run(args: argparse.Namespace) -> int:
    from memory_operator.backup.summary import configure_logging

    configure_logging(args.verbose)
    if not args.store:
        logger.error("--store (or %s) is required", env.STORE_NAME)
        return 2
    if args.backup:
        return run_backup(args)
    return run_schedule(args)


def run_schedule(args: argparse.Namespace) -> int:
    """Create the MemoryBackup of this scheduled run (once: an existing one is success)."""
    from memory_operator.backup import settings
    from memory_operator.backup.schedule import fire_time, scheduled_backup_name
    from memory_operator.backup.summary import emit, now

    try:
        namespace = settings.namespace(args.namespace)
    except settings.SettingsError as error:
        logger.error("%s", error)
        return 1
    name = scheduled_backup_name(args.store, fire_time(args.schedule, now()))
    try:
        created = create_memory_backup(namespace, args.store, name)
    except Exception as error:
        logger.error("cannot create MemoryBackup %s/%s: %s", namespace, name, _api_reason(error))
        return 1
    logger.info("%s MemoryBackup %s/%s", "created" if created else "found existing", namespace, name)
    emit({"backup": name, "namespace": namespace, "created": created}, args.termination_log)
    return 0


def _api_reason(error: Exception) -> str:
    from kubernetes.client.exceptions import ApiException

    if isinstance(error, ApiException):
        return f"HTTP {error.status} {error.reason}"
    return str(error)


def load_kube_config() -> None:
    from kubernetes import config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        # The client reads KUBECONFIG once, at import; read it now so that the current environment counts.
        config.load_kube_config(config_file=env.get("KUBECONFIG"))


def memory_backup_body(namespace: str, store: str, name: str) -> dict[str, Any]:
    from memory_operator.api.backup import KIND
    from memory_operator.api.common import API_VERSION

    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/part-of": "memory-operator",
                "app.kubernetes.io/component": "backup",
                "memory-operator.io/store": store,
            },
        },
        "spec": {"storeRef": {"name": store}},
    }


def create_memory_backup(namespace: str, store: str, name: str) -> bool:
    """Create the MemoryBackup; `False` when it exists already (a retried run of the same schedule)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    from memory_operator.api.backup import PLURAL
    from memory_operator.api.common import GROUP, VERSION

    load_kube_config()
    with client.ApiClient() as api_client:
        api = client.CustomObjectsApi(api_client)
        try:
            api.create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, memory_backup_body(namespace, store, name)
            )
        except ApiException as error:
            if error.status == 409:
                return False
            raise
    return True


def prunable_memory_backup(obj: Mapping[str, Any], store: str, keep: str) -> bool:
    """Whether retention may delete this MemoryBackup: it is `store`'s, and not the backup just taken."""
    name = (obj.get("metadata") or {}).get("name")
    store_ref = ((obj.get("spec") or {}).get("storeRef") or {}).get("name")
    return store_ref == store and name != keep


def delete_memory_backups(namespace: str, store: str, names: Sequence[str], keep: str) -> list[str]:
    """Delete the MemoryBackups `names` of `store` (those that exist); return the names not handled.

    A backup folder is named after its MemoryBackup, so these are the objects of the pruned backups.
    A MemoryBackup of another store that happens to share a name is left alone. When the API cannot be
    reached (or refuses), one line is logged and the names left are returned: the backup stands anyway.
    """
    from kubernetes import client

    left = [name for name in names if name != keep]
    try:
        load_kube_config()
        with client.ApiClient() as api_client:
            api = client.CustomObjectsApi(api_client)
            while left:
                _delete_memory_backup(api, namespace, store, left[0], keep)
                left.pop(0)
    except Exception as error:
        logger.warning(
            "cannot delete the MemoryBackups of pruned backups %s in %s: %s",
            ", ".join(left),
            namespace,
            _api_reason(error),
        )
    return left


def _delete_memory_backup(api: Any, namespace: str, store: str, name: str, keep: str) -> None:
    from kubernetes.client.exceptions import ApiException

    from memory_operator.api.backup import PLURAL
    from memory_operator.api.common import GROUP, VERSION

    try:
        obj = api.get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, _request_timeout=PRUNE_API_TIMEOUT
        )
        if not prunable_memory_backup(obj, store, keep):
            logger.info("MemoryBackup %s/%s is not one of store %s: kept", namespace, name, store)
            return
        api.delete_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, _request_timeout=PRUNE_API_TIMEOUT
        )
    except ApiException as error:
        if error.status == 404:  # never made (a backup taken by hand) or deleted already
            return
        raise
    logger.info("deleted MemoryBackup %s/%s", namespace, name)


def prune_memory_backups(namespace: str | None, store: str, pruned: Sequence[str], keep: str) -> list[str]:
    """Delete the pruned backups' MemoryBackups; return the names whose objects may remain."""
    from memory_operator.backup import settings

    if not pruned:
        return []
    try:
        resolved = settings.namespace(namespace)
    except settings.SettingsError as error:
        logger.warning("cannot delete the MemoryBackups of pruned backups %s: %s", ", ".join(pruned), error)
        return list(pruned)
    return delete_memory_backups(resolved, store, pruned, keep)


def run_backup(args: argparse.Namespace) -> int:
    """Take the backup and report it as a MemoryBackup status."""
    from memory_operator.api.backup import CollectionSnapshot, MemoryBackupStatus
    from memory_operator.backup import settings
    from memory_operator.backup.destination import DestinationError
    from memory_operator.backup.streams import ChecksumMismatch
    from memory_operator.backup.summary import emit, now, rfc3339
    from memory_operator.backup.take import BackupRequest, prune, take_backup
    from memory_operator.qdrant_node import QdrantError, QdrantNode

    started = now()
    status = MemoryBackupStatus(phase="Failed", start_time=rfc3339(started))
    pruned: list[str] = []
    not_deleted: list[str] = []
    try:
        api_key = env.get(env.QDRANT_API_KEY)
        request = BackupRequest(
            store=args.store,
            backup=args.backup,
            namespace=args.namespace or env.get(env.STORE_NAMESPACE),
            collection=settings.collection(),
            peers=settings.qdrant_peers(),
        )
        retention = settings.retention()
        destination = settings.destination()
        status.location = destination.location(request.store, request.backup)
        manifest = take_backup(request, destination, lambda url: QdrantNode(url, api_key), now)
        status.phase = "Completed"
        status.start_time = rfc3339(manifest.start_time)
        status.size_bytes = manifest.size
        status.snapshots = [
            CollectionSnapshot(
                collection=s.collection,
                name=s.name,
                peer=s.peer if len(request.peers) > 1 else None,
                size_bytes=s.size,
                checksum=s.sha256,
            )
            for s in manifest.snapshots
        ]
        try:
            pruned = prune(destination, request.store, request.backup, retention, now())
        except DestinationError as error:
            # The backup itself is good; the next run prunes again.
            logger.warning("retention pruning failed: %s", error)
        not_deleted = prune_memory_backups(args.namespace, request.store, pruned, request.backup)
    except (settings.SettingsError, QdrantError, DestinationError, ChecksumMismatch) as error:
        status.error = str(error)
        logger.error("backup %s of store %s failed: %s", args.backup, args.store, error)
    status.stop_time = rfc3339(now())
    summary = status.wire()
    summary.pop("conditions", None)  # the operator sets conditions itself
    if pruned:
        summary[PRUNED_KEY] = pruned
    if not_deleted:
        summary[NOT_DELETED_KEY] = not_deleted
    emit(summary, args.termination_log, log_only=(PRUNED_KEY, NOT_DELETED_KEY))
    return 0 if status.phase == "Completed" else 1
