"""Taking one backup: snapshot every collection on every node, copy each to the destination, prune."""

from __future__ import annotations

import datetime
import io
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from qdrant_client.http import models

from memory_operator.backup.destination import Destination, DestinationError
from memory_operator.backup.manifest import CollectionPoints, Manifest, SnapshotFile
from memory_operator.backup.retention import CompletedBackup, backups_to_prune
from memory_operator.backup.settings import Retention
from memory_operator.backup.streams import CHUNK_SIZE, ChecksumMismatch, HashingReader
from memory_operator.collection_names import apps_collection, entities_collection
from memory_operator.qdrant_node import NotFound, QdrantError, QdrantNode

logger = logging.getLogger("memory_operator.backup")

# Qdrant names a snapshot after its collection, peer and second: another snapshot of the same collection
# on the same node in the same second (a second backup running) replaces it. Such a snapshot is taken
# again, a second or two later, at most this many times.
SNAPSHOT_ATTEMPTS = 5


class SnapshotReplaced(Exception):
    """The snapshot was replaced (or deleted) by another one of the same name before it was copied."""


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
    """The store's collection, and those named after it that exist: mem0's `<collection>_entities`
    and the server's app states, `<collection>_apps`."""
    if collection not in available:
        raise QdrantError(f"collection {collection} does not exist: nothing to back up yet")
    companions = [entities_collection(collection), apps_collection(collection)]
    return [collection, *(c for c in companions if c in available)]


def snapshot_file(collection: str, node: int, name: str) -> str:
    return f"{collection}/node-{node}/{name}"


def _listed(node: QdrantNode, collection: str, name: str) -> models.SnapshotDescription | None:
    try:
        return next((s for s in node.list_snapshots(collection) if s.name == name), None)
    except QdrantError:
        return None


def _copy_once(
    node: QdrantNode, index: int, collection: str, request: BackupRequest, destination: Destination
) -> SnapshotFile:
    """Snapshot `collection` on `node`, stream it to the destination, verify it, delete it from Qdrant.

    Raises SnapshotReplaced when what was copied is not the snapshot this call made: the file is then
    left to whoever made it, and the copy is removed from the destination.
    """
    version = node.version()
    shards = active_local_shards(node, collection)
    description = node.create_snapshot(collection)
    file = snapshot_file(collection, index, description.name)
    ours = True
    try:
        try:
            with node.download_snapshot(collection, description.name) as chunks:
                reader = HashingReader(chunks)
                destination.put(request.store, request.backup, file, io.BufferedReader(reader, CHUNK_SIZE))
        except NotFound as error:
            ours = False  # deleted by the other backup that made a snapshot of the same name
            raise SnapshotReplaced(f"snapshot {description.name} on {node.url} is gone") from error
        try:
            # Qdrant reports the checksum and size of the file it wrote: compare with what arrived, so that
            # a damaged transfer fails now rather than at restore.
            reader.verify(
                f"snapshot {description.name} of {collection} on {node.url}",
                description.checksum,
                description.size or None,
            )
        except ChecksumMismatch as error:
            listed = _listed(node, collection, description.name)
            if listed is not None and (listed.checksum, listed.size) != (
                description.checksum,
                description.size,
            ):
                ours = False
                raise SnapshotReplaced(
                    f"snapshot {description.name} on {node.url} was replaced by another of the same name"
                ) from error
            raise
    except SnapshotReplaced:
        destination.delete_file(request.store, request.backup, file)
        raise
    finally:
        if ours:
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
        shards=shards,
    )


def active_local_shards(node: QdrantNode, collection: str) -> list[int] | None:
    """Shards of which `node` holds an active replica; a replica in another state is logged, as the
    snapshot holds its data too, which may be behind the active replicas'."""
    info = node.cluster_info(collection)
    if info is None:
        return None
    for shard in info.local_shards:
        if shard.state != models.ReplicaState.ACTIVE:
            logger.warning(
                "shard %d of %s on %s is %s: its snapshot holds that replica's data as it is",
                shard.shard_id,
                collection,
                node.url,
                shard.state.value,
            )
    return sorted(s.shard_id for s in info.local_shards if s.state == models.ReplicaState.ACTIVE)


def copy_snapshot(
    node: QdrantNode,
    index: int,
    collection: str,
    request: BackupRequest,
    destination: Destination,
    sleep: Callable[[float], None] = time.sleep,
) -> SnapshotFile:
    """`_copy_once`, taken again in a later second while another snapshot keeps replacing it."""
    for attempt in range(1, SNAPSHOT_ATTEMPTS + 1):
        try:
            return _copy_once(node, index, collection, request, destination)
        except SnapshotReplaced as replaced:
            logger.warning("%s (attempt %d of %d): taking it again", replaced, attempt, SNAPSHOT_ATTEMPTS)
            # Past the second that named it, and apart from the other taker's own retry.
            sleep(1.0 + random.random())
    raise QdrantError(
        f"every snapshot of {collection} on {node.url} was replaced by another of the same name "
        f"({SNAPSHOT_ATTEMPTS} attempts): another backup of this store is running"
    )


def take_backup(
    request: BackupRequest,
    destination: Destination,
    node_factory: Callable[[str], QdrantNode],
    clock: Callable[[], datetime.datetime],
    sleep: Callable[[float], None] = time.sleep,
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
        files: list[SnapshotFile] = []
        points: list[CollectionPoints] = []
        for collection in collections:
            # Counted through one node, which asks every shard: the restore checks its result against it.
            before = nodes[0].count(collection)
            files += [
                copy_snapshot(node, index, collection, request, destination, sleep)
                for index, node in enumerate(nodes)
            ]
            points.append(
                CollectionPoints(collection=collection, before=before, after=nodes[0].count(collection))
            )
        manifest = Manifest(
            store=request.store,
            backup=request.backup,
            namespace=request.namespace,
            collection=request.collection,
            start_time=started,
            time=clock(),
            snapshots=sorted(files, key=lambda f: (f.node, collections.index(f.collection))),
            points=points,
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
