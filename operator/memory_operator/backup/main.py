"""`memory-operator backup --store S --backup B`: take one backup of a store.

The operator creates MemoryBackups (on the store's schedule; people create others) and runs a Job with
this command for each: a snapshot of each collection on each Qdrant node, copied to the destination
with its SHA-256, then `manifest.json`, then retention pruning of the files of the store's oldest
backups. Its summary (a MemoryBackup status, with the pruned backups' names, whose MemoryBackups the
operator then deletes) goes to stdout and to the termination log, from which the operator copies it
into the MemoryBackup's status. The job talks to Qdrant and the destination only, never to the
Kubernetes API.
"""

from __future__ import annotations

import argparse
import logging

from memory_operator import env

logger = logging.getLogger("memory_operator.backup")


def configure(parser: argparse.ArgumentParser) -> None:
    from memory_operator.backup.summary import add_summary_arguments

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
        help="the MemoryBackup to take",
    )
    parser.add_argument(
        "--namespace",
        default=None,
        help=f"namespace of the store (default {env.STORE_NAMESPACE}, else the pod's)",
    )
    add_summary_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from memory_operator.backup.summary import configure_logging

    configure_logging(args.verbose)
    if not args.store:
        logger.error("--store (or %s) is required", env.STORE_NAME)
        return 2
    if not args.backup:
        logger.error("--backup is required: the operator creates each MemoryBackup and runs its Job")
        return 2
    return run_backup(args)


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
            # The operator deletes the MemoryBackups of the backups pruned here (named like them).
            status.pruned = prune(destination, request.store, request.backup, retention, now())
        except DestinationError as error:
            # The backup itself is good; the next run prunes again.
            logger.warning("retention pruning failed: %s", error)
    except (settings.SettingsError, QdrantError, DestinationError, ChecksumMismatch) as error:
        status.error = str(error)
        logger.error("backup %s of store %s failed: %s", args.backup, args.store, error)
    status.stop_time = rfc3339(now())
    summary = status.wire()
    summary.pop("conditions", None)  # the operator sets conditions itself
    emit(summary, args.termination_log)
    return 0 if status.phase == "Completed" else 1
