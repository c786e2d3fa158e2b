"""`memory-operator restore`: recover a new store's collections from a completed backup.

Runs as the restore Job of a store with `bootstrap.fromBackup`, before its memory server starts. Reads
the MemoryBackup when the Kubernetes API allows (the store it was taken of, and its location for a store
without a destination of its own), then the backup's manifest; downloads each snapshot file to scratch
space while checking its SHA-256 (nothing reaches Qdrant from a damaged file), uploads it to the Qdrant
node it was taken on (by position: node `n` of the backup goes to node `n` of the store) with
`priority=snapshot`, and waits for the collection. A node whose shards of a collection already hold
points is left alone, so running the job again after it succeeded changes nothing (`--force` recovers
regardless).
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memory_operator import env

if TYPE_CHECKING:
    from memory_operator.backup.destination import Destination
    from memory_operator.backup.manifest import Manifest
    from memory_operator.backup.snapshots import QdrantNode

logger = logging.getLogger("memory_operator.backup")
DEFAULT_WAIT_SECONDS = 300.0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Qdrant and the destination come from the environment, as for `backup`: "
        f"{env.QDRANT_URL} or {env.QDRANT_PEERS}, {env.QDRANT_API_KEY}, {env.COLLECTION}, "
        f"{env.BACKUP_S3_BUCKET} (and its prefix, endpoint, region) or {env.BACKUP_DIR}."
    )
    parser.add_argument(
        "--store",
        default=env.get(env.STORE_NAME),
        help=f"the MemoryStore being restored (default {env.STORE_NAME})",
    )
    parser.add_argument("--backup", required=True, help="the MemoryBackup to restore from")
    parser.add_argument(
        "--source-store",
        default=env.get(env.BACKUP_SOURCE_STORE),
        help="the store the backup was taken of; found in the destination when unset "
        f"({env.BACKUP_SOURCE_STORE})",
    )
    parser.add_argument(
        "--force", action="store_true", help="recover even collections that already hold points"
    )
    parser.add_argument(
        "--wait-timeout",
        type=float,
        default=DEFAULT_WAIT_SECONDS,
        help="seconds to wait for Qdrant to answer and for each collection to appear "
        f"(default {DEFAULT_WAIT_SECONDS:g})",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="scratch space for one snapshot file at a time "
        f"(default {env.SCRATCH_DIR} if present, else the temp dir)",
    )
    parser.add_argument(
        "--termination-log",
        type=Path,
        default=Path(env.TERMINATION_LOG),
        help=f"file for the JSON summary (default {env.TERMINATION_LOG})",
    )
    parser.add_argument("--verbose", action="store_true", help="log debug messages")


class RestoreError(Exception):
    """The backup cannot be restored here; the message says why."""


@dataclass
class RestoreOutcome:
    source: str = ""
    restored: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)


def target_collection(collection: str, backed_up: str, target: str) -> str:
    """The name `collection` gets in the restored store, whose main collection is `target`.

    Collections named after the backed-up main one (e.g. `<collection>_entities`) follow it.
    """
    if collection.startswith(backed_up):
        return target + collection[len(backed_up) :]
    return collection


def find_manifest(destination: Destination, store: str, backup: str, source_store: str | None) -> Manifest:
    """The manifest of `backup`: under the source store if given, else this store, else any single store."""
    candidates = [source_store] if source_store else [store]
    for name in candidates:
        manifest = destination.read_manifest(name, backup)
        if manifest is not None:
            return manifest
    if source_store:
        where = destination.location(source_store, backup)
        raise RestoreError(f"no completed backup {backup} of store {source_store} at {where}")
    found = [
        m
        for other in destination.list_stores()
        if other != store and (m := destination.read_manifest(other, backup)) is not None
    ]
    if len(found) > 1:
        stores = ", ".join(sorted(m.store for m in found))
        raise RestoreError(f"backup {backup} exists for several stores ({stores}): set --source-store")
    if not found:
        raise RestoreError(f"no completed backup named {backup} in the destination")
    return found[0]


def restore(
    destination: Destination,
    store: str,
    backup: str,
    source_store: str | None,
    collection: str | None,
    peers: Sequence[str],
    node_factory: Callable[[str], QdrantNode],
    work_dir: Path | None,
    wait_timeout: float,
    force: bool = False,
) -> RestoreOutcome:
    from memory_operator.backup.streams import HashingReader

    manifest = find_manifest(destination, store, backup, source_store)
    outcome = RestoreOutcome(source=destination.location(manifest.store, manifest.backup))
    node_count = max((s.node for s in manifest.snapshots), default=0) + 1
    if node_count != len(peers):
        raise RestoreError(
            f"backup {backup} was taken on {node_count} Qdrant node(s) and this store has {len(peers)}: "
            "restore into a store with as many nodes"
        )
    target = collection or manifest.collection
    nodes = [node_factory(url) for url in peers]
    try:
        for node in nodes:
            node.wait_until_up(wait_timeout)
        for snapshot in sorted(
            manifest.snapshots, key=lambda s: (s.node, s.collection != manifest.collection)
        ):
            node = nodes[snapshot.node]
            name = target_collection(snapshot.collection, manifest.collection, target)
            entry = {"collection": name, "node": snapshot.node, "snapshot": snapshot.name}
            points = node.local_points(name)
            if points and not force:
                logger.info("%s on %s already holds %d points: left as is", name, node.url, points)
                outcome.skipped.append({**entry, "points": points})
                continue
            with tempfile.TemporaryFile(dir=work_dir) as scratch:
                with destination.open(manifest.store, manifest.backup, snapshot.file) as stream:
                    reader = HashingReader.over(stream)
                    while chunk := reader.read(1024 * 1024):
                        scratch.write(chunk)
                reader.verify(f"backup file {snapshot.file}", snapshot.sha256, snapshot.size)
                scratch.seek(0)
                node.recover_snapshot(name, snapshot.name, scratch, snapshot.sha256)
            node.wait_for_collection(name, wait_timeout)
            logger.info("restored %s on %s from %s", name, node.url, snapshot.file)
            outcome.restored.append({**entry, "sha256": snapshot.sha256, "sizeBytes": snapshot.size})
    finally:
        for node in nodes:
            node.close()
    return outcome


def read_memory_backup(namespace: str | None, backup: str) -> dict[str, Any] | None:
    """The MemoryBackup object, or `None` when the Kubernetes API is out of reach or it does not exist.

    It tells which store the backup was taken of and where it is; the restore can do without (it then
    looks for the backup in the destination), so any failure here is only logged.
    """
    if not namespace:
        return None
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    from memory_operator.api.backup import PLURAL
    from memory_operator.api.common import GROUP, VERSION
    from memory_operator.backup.main import load_kube_config

    try:
        load_kube_config()
    except (config.ConfigException, OSError) as error:
        logger.info("no Kubernetes API (%s): looking for backup %s in the destination", error, backup)
        return None
    try:
        with client.ApiClient() as api_client:
            found = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, backup, _request_timeout=30
            )
    except ApiException as error:
        logger.warning(
            "cannot read MemoryBackup %s/%s: HTTP %s %s", namespace, backup, error.status, error.reason
        )
        return None
    except Exception as error:  # urllib3's connection errors: the API may simply not be reachable
        logger.warning("cannot read MemoryBackup %s/%s: %s", namespace, backup, error)
        return None
    return dict(found)


def default_work_dir() -> Path | None:
    scratch = Path(env.SCRATCH_DIR)
    return scratch if scratch.is_dir() and os.access(scratch, os.W_OK) else None


def run(args: argparse.Namespace) -> int:
    from memory_operator.backup import settings
    from memory_operator.backup.destination import DestinationError
    from memory_operator.backup.snapshots import QdrantError, QdrantNode
    from memory_operator.backup.streams import ChecksumMismatch
    from memory_operator.backup.summary import configure_logging, emit, now, rfc3339

    configure_logging(args.verbose)
    if not args.store:
        logger.error("--store (or %s) is required", env.STORE_NAME)
        return 2
    summary: dict[str, Any] = {
        "phase": "Failed",
        "store": args.store,
        "backup": args.backup,
        "startTime": rfc3339(now()),
    }
    try:
        api_key = env.get(env.QDRANT_API_KEY)
        namespace = env.get(env.STORE_NAMESPACE)
        memory_backup = read_memory_backup(namespace, args.backup) or {}
        source_store = args.source_store or ((memory_backup.get("spec") or {}).get("storeRef") or {}).get(
            "name"
        )
        location = (memory_backup.get("status") or {}).get("location")
        if settings.has_destination() or not (location and source_store):
            destination = settings.destination()
        else:
            destination = settings.destination_at(location, source_store, args.backup)
        outcome = restore(
            destination=destination,
            store=args.store,
            backup=args.backup,
            source_store=source_store,
            collection=env.get(env.COLLECTION),
            peers=settings.qdrant_peers(),
            node_factory=lambda url: QdrantNode(url, api_key),
            work_dir=args.work_dir or default_work_dir(),
            wait_timeout=args.wait_timeout,
            force=args.force,
        )
        summary.update(phase="Completed", location=outcome.source, restored=outcome.restored)
        if outcome.skipped:
            summary["skipped"] = outcome.skipped
    except (settings.SettingsError, RestoreError, QdrantError, DestinationError, ChecksumMismatch) as error:
        summary["error"] = str(error)
        logger.error("restore of %s from backup %s failed: %s", args.store, args.backup, error)
    summary["stopTime"] = rfc3339(now())
    emit(summary, args.termination_log, list_key="restored")
    return 0 if summary["phase"] == "Completed" else 1
