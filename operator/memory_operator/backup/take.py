"""Taking one backup: snapshot every collection on every node, copy each to the destination, prune."""

from __future__ import annotations

import datetime
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from memory_operator.backup.destination import Destination, DestinationError
from memory_operator.backup.manifest import Manifest, SnapshotFile
from memory_operator.backup.retention import CompletedBackup, backups_to_prune
from memory_operator.backup.settings import Retention
from memory_operator.backup.snapshots import QdrantError, QdrantNode
from memory_operator.backup.streams import CHUNK_SIZE, HashingReader

logger = logging.getLogger("memory_operator.backup")

ENTITIES_SUFFIX = "_entities"


@dataclass(frozen=True)
class BackupRequest:
    store: str
    backup: str
    namespace: str | None
    collection: str
    peers: Sequence[str]


@dataclass
class BackupOutcome:
    manifest: Manifest
    pruned: list[str] = field(default_factory=list)
    reused: bool = False


def collections_to_back_up(available: Sequence[str], collection: str) -> list[str]:
    """The store's collection and, when mem0's graph side made it, `<collection>_entities`."""
    if collection not in available:
        raise QdrantError(f"collection {collection} does not exist: nothing to back up yet")
    entities = collection + ENTITIES_SUFFIX
    return [collection, entities] if entities in available else [collection]


def snapshot_file(collection: str, node: int, name: str) -> str:
    return f"{collection}/node-{node}/{name}"


def copy_snapshot(
    node: QdrantNode, index: int, collection: str, request: BackupRequest, destination: Destination
) -> SnapshotFile:
    """Snapshot `collection` on `node`, stream it to the destination, verify it, delete it from Qdrant."""
    version = node.version()
    description = node.create_snapshot(collection)
    file = snapshot_file(collection, index, description.name)
    try:
        with node.download_snapshot(collection, description.name) as chunks:
            reader = HashingReader(chunks)
            destination.put(request.store, request.backup, file, io.BufferedReader(reader, CHUNK_SIZE))
        # Qdrant reports the checksum and size of the file it wrote (recent versions): compare with what
        # arrived, so that a damaged transfer fails now rather than at restore.
        reader.verify(
            f"snapshot {description.name} of {collection} on {node.url}",
            description.checksum,
            description.size or None,
        )
    finally:
        try:
            node.delete_snapshot(collection, description.name)
        except QdrantError as error:
            logger.warning("could not delete snapshot %s from %s: %s", description.name, node.url, error)
    logger.info("copied %s (%d bytes, sha256 %s)", file, reader.size, reader.sha256)
    return SnapshotFile(
        collection=collection,
        peer=node.url,
        node=index,
        name=description.name,
        file=file,
        size=reader.size,
        sha256=reader.sha256,
        qdrant_version=version,
    )


def take_backup(
    request: BackupRequest,
    destination: Destination,
    node_factory: Callable[[str], QdrantNode],
    clock: Callable[[], datetime.datetime],
) -> Manifest:
    """Take the backup, or return its manifest when a previous attempt already completed it."""
    destination.check()
    existing = destination.read_manifest(request.store, request.backup)
    if existing is not None:
        logger.info("backup %s is already complete", request.backup)
        return existing
    started = clock()
    # Files of an earlier, failed attempt (no manifest) would otherwise linger unreferenced.
    destination.delete_backup(request.store, request.backup)
    nodes = [node_factory(url) for url in request.peers]
    try:
        # Collections are cluster-wide: the first node's list is every node's.
        collections = collections_to_back_up(nodes[0].collections(), request.collection)
        files = [
            copy_snapshot(node, index, collection, request, destination)
            for index, node in enumerate(nodes)
            for collection in collections
        ]
        manifest = Manifest(
            store=request.store,
            backup=request.backup,
            namespace=request.namespace,
            collection=request.collection,
            start_time=started,
            time=clock(),
            snapshots=files,
        )
        destination.write_manifest(manifest)
    except BaseException:
        try:
            destination.delete_backup(request.store, request.backup)
        except DestinationError as cleanup:
            logger.warning("could not remove the failed backup's files: %s", cleanup)
        raise
    finally:
        for node in nodes:
            node.close()
    return manifest


def prune(
    destination: Destination, store: str, keep: str, retention: Retention, now: datetime.datetime
) -> list[str]:
    """Delete the store's completed backups that retention no longer keeps; return their names."""
    if retention.max_count is None and retention.max_age is None:
        return []
    completed: list[CompletedBackup] = []
    for name in destination.list_backups(store):
        try:
            manifest = destination.read_manifest(store, name)
        except ValueError as error:
            logger.warning("ignoring backup %s: unreadable manifest (%s)", name, error)
            continue
        if manifest is not None:  # no manifest: in progress, never pruned
            completed.append(CompletedBackup(name, manifest.time))
    pruned = backups_to_prune(completed, now, retention.max_count, retention.max_age, keep)
    for name in pruned:
        logger.info("pruning backup %s of store %s", name, store)
        destination.delete_backup(store, name)
    return pruned
