"""`memory-operator restore`: recover a new store's collections from a completed backup, by Qdrant's rules.

Runs as the restore Job of a store with `bootstrap.fromBackup`, before its memory server starts. The
operator gives it the store the backup was taken of and the backup's location (from the MemoryBackup;
used by a store without a destination of its own): the job never talks to the Kubernetes API. It reads
the backup's manifest, and:

1. refuses a backup taken on another number of Qdrant nodes, or with another Qdrant minor version than
   the store runs (Qdrant snapshots are compatible within one minor version);
2. waits until every node answers `/readyz` and, in distributed mode, has joined the cluster;
3. for each collection, unless it already holds points (a rerun after success, or the server wrote to
   it; `--force` recovers regardless): recovers node 0's snapshot first, which on a missing collection
   makes Qdrant create it on every peer from the snapshot's configuration, then the other nodes'
   snapshots, each onto the node it was taken on (by position) and only when it holds a shard not yet
   recovered. Every recovery uses `priority=snapshot`: the snapshot's data wins over the replicas Qdrant
   placed elsewhere, which it then drops or resynchronises. Each file streams from the destination into
   Qdrant as a multipart upload carrying the manifest's SHA-256, which Qdrant verifies before it touches
   the collection: nothing is staged in the job's scratch space;
4. deletes every uploaded file from the node's snapshots folder (Qdrant keeps uploads there);
5. drops replicas left `Partial` (their node's snapshot held no data for the shard), waits for Qdrant's
   own shard transfers, has Qdrant copy replicas until every shard has the collection's replication
   factor again, then checks that every shard has an active replica and that the exact point count is
   the one the backup recorded.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from memory_operator import env

if TYPE_CHECKING:
    from memory_operator.api.erasure import ErasureEntry
    from memory_operator.api.restore import CollectionCheck, RestoreSummary
    from memory_operator.backup.destination import Destination
    from memory_operator.backup.manifest import Manifest, SnapshotFile
    from memory_operator.qdrant_node import QdrantNode, Shards

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
        "--erasures-file",
        type=Path,
        default=None,
        help="the erasures to re-apply once the collections are restored (its `reapply` list; default "
        f"${env.ERASURES_FILE}, none when unset)",
    )
    parser.add_argument(
        "--wait-timeout",
        type=float,
        default=DEFAULT_WAIT_SECONDS,
        help="seconds to wait for Qdrant to be ready, and for its shard transfers after a recovery "
        f"(default {DEFAULT_WAIT_SECONDS:g})",
    )
    from memory_operator.backup.summary import add_summary_arguments

    add_summary_arguments(parser)


class RestoreError(Exception):
    """The backup cannot be restored here; the message says why, `reason` in one CamelCase word."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class VersionMismatch(RestoreError):
    """The backup's Qdrant minor version is not the store's."""

    def __init__(self, backup_version: str, store_version: str) -> None:
        from memory_operator.api.restore import QDRANT_VERSION_MISMATCH

        super().__init__(
            f"the backup was taken with Qdrant {backup_version} and the store runs Qdrant {store_version}: "
            "Qdrant restores snapshots of its own minor version only. Restore into a store running "
            f"Qdrant {backup_version} (spec.vectorStore.image), then upgrade it",
            QDRANT_VERSION_MISMATCH,
        )
        self.backup_version = backup_version
        self.store_version = store_version


@dataclass
class Restore:
    """One run: what it is asked to do and what it learns; `summary` is its report."""

    destination: Destination
    store: str
    backup: str
    source_store: str | None
    collection: str | None
    nodes: Sequence[QdrantNode]
    wait_timeout: float
    summary: RestoreSummary
    force: bool = False
    reapply: Sequence[ErasureEntry] = ()
    """MemoryErasures to apply again once the collections are restored."""
    sleep: Callable[[float], None] = time.sleep
    manifest: Manifest | None = field(default=None, init=False)
    peer_ids: list[int] = field(default_factory=list, init=False)
    """Peer ids of the nodes in distributed mode (empty for a single node)."""


def target_collection(collection: str, backed_up: str, target: str) -> str:
    """The name `collection` gets in the restored store, whose main collection is `target`.

    Collections named after the backed-up main one (e.g. `<collection>_entities`) follow it.
    """
    if collection.startswith(backed_up):
        return target + collection[len(backed_up) :]
    return collection


def find_manifest(destination: Destination, store: str, backup: str, source_store: str | None) -> Manifest:
    """The manifest of `backup`: under the source store if given, else this store, else any single store."""
    from memory_operator.api.restore import BACKUP_NOT_FOUND

    candidates = [source_store] if source_store else [store]
    for name in candidates:
        manifest = destination.read_manifest(name, backup)
        if manifest is not None:
            return manifest
    if source_store:
        where = destination.location(source_store, backup)
        raise RestoreError(
            f"no completed backup {backup} of store {source_store} at {where}", BACKUP_NOT_FOUND
        )
    found = [
        m
        for other in destination.list_stores()
        if other != store and (m := destination.read_manifest(other, backup)) is not None
    ]
    if len(found) > 1:
        stores = ", ".join(sorted(m.store for m in found))
        raise RestoreError(
            f"backup {backup} exists for several stores ({stores}): set --source-store", BACKUP_NOT_FOUND
        )
    if not found:
        raise RestoreError(f"no completed backup named {backup} in the destination", BACKUP_NOT_FOUND)
    return found[0]


def check_versions(manifest: Manifest, store_versions: Sequence[str]) -> tuple[str | None, str]:
    """The backup's and the store's Qdrant versions (comma-separated when several); raises
    VersionMismatch unless both run one and the same minor version."""
    from memory_operator.qdrant_node import minor_version

    backup_versions = sorted({s.qdrant_version for s in manifest.snapshots if s.qdrant_version})
    store_text = ", ".join(sorted(set(store_versions)))
    if not backup_versions:
        logger.warning(
            "backup %s recorded no Qdrant version: restoring without the version check", manifest.backup
        )
        return None, store_text
    backup_text = ", ".join(backup_versions)
    minors = {minor_version(v) for v in [*backup_versions, *store_versions]}
    if len(minors) != 1 or None in minors:
        raise VersionMismatch(backup_text, store_text)
    return backup_text, store_text


def snapshots_to_recover(snapshots: Sequence[SnapshotFile]) -> list[SnapshotFile]:
    """One collection's snapshots in recovery order: node 0 first (it creates the collection), then the
    others that hold an active shard not already recovered. A snapshot that recorded no shards is always
    recovered."""
    chosen: list[SnapshotFile] = []
    covered: set[int] = set()
    for snapshot in sorted(snapshots, key=lambda s: s.node):
        if chosen and snapshot.shards is not None and set(snapshot.shards) <= covered:
            logger.info("snapshot of node %d holds no shard not yet recovered: skipped", snapshot.node)
            continue
        chosen.append(snapshot)
        covered |= set(snapshot.shards or ())
    return chosen


def upload_name(backup: str, snapshot: SnapshotFile) -> str:
    """The file name Qdrant keeps the upload under: unique per backup and run, so it is ours to delete."""
    return f"restore-{backup}-node-{snapshot.node}-{secrets.token_hex(4)}.snapshot"


def recover(run: Restore, manifest: Manifest, snapshot: SnapshotFile, target: str) -> None:
    """Stream one snapshot from the destination into its node; delete the upload from the node after."""
    from memory_operator.api.restore import CHECKSUM_MISMATCH, RestoredSnapshot
    from memory_operator.backup.streams import HashingUpload
    from memory_operator.qdrant_node import NotFound, QdrantError

    node = run.nodes[snapshot.node]
    name = upload_name(run.backup, snapshot)
    what = f"backup file {snapshot.file}"
    try:
        with run.destination.open(manifest.store, manifest.backup, snapshot.file) as stream:
            upload = HashingUpload(stream, name)
            try:
                node.recover_from_upload(target, upload, snapshot.sha256)
            except QdrantError as refused:
                if upload.size and upload.sha256 != snapshot.sha256.lower():
                    # Qdrant refused the file for its checksum: say which file and what it held.
                    raise RestoreError(
                        f"{what}: checksum mismatch, expected sha256 {snapshot.sha256}, got {upload.sha256}; "
                        f"Qdrant refused it before recovering anything ({refused})",
                        CHECKSUM_MISMATCH,
                    ) from refused
                raise
            upload.verify(what, snapshot.sha256, snapshot.size)
    finally:
        try:
            node.delete_snapshot(target, name)
        except NotFound:
            pass  # never stored (refused before), or gone with the collection
        except QdrantError as error:
            logger.warning("could not delete the uploaded snapshot %s from %s: %s", name, node.url, error)
            run.summary.uploads_not_deleted.append(f"{node.url}: {name}")
    logger.info("recovered %s on %s from %s", target, node.url, snapshot.file)
    run.summary.restored.append(
        RestoredSnapshot(
            collection=target,
            node=snapshot.node,
            snapshot=snapshot.name,
            sha256=snapshot.sha256,
            size_bytes=snapshot.size,
        )
    )


def shards_of(node: QdrantNode, collection: str) -> Shards:
    from memory_operator.qdrant_node import QdrantError, Shards

    info = node.cluster_info(collection)
    if info is None:
        raise QdrantError(f"collection {collection} does not exist on {node.url} after its recovery")
    return Shards.of(info)


def settle(run: Restore, collection: str, *, final: bool, interval: float = 1.0) -> Shards:
    """Wait (up to the wait timeout) until Qdrant's shard transfers are done; when `final`, first drop the
    replicas left `Partial` with no data coming (their node's snapshot held none of that shard).

    Returns the last state seen; one not at rest by the timeout (a node down) is logged, not fatal: the
    check that follows needs one active replica per shard.
    """
    deadline = time.monotonic() + run.wait_timeout
    dropped: set[tuple[int, int]] = set()
    while True:
        shards = shards_of(run.nodes[0], collection)
        stranded = [r for r in shards.stranded_partials() if r not in dropped] if final else []
        for shard, peer in stranded:
            logger.info("dropping the empty replica of shard %d of %s on peer %d", shard, collection, peer)
            run.nodes[0].drop_replica(collection, shard, peer)
            dropped.add((shard, peer))
        if not stranded and shards.at_rest():
            return shards
        if time.monotonic() > deadline:
            logger.warning(
                "%s: shard transfers still under way after %gs: %s",
                collection,
                run.wait_timeout,
                shards.replicas,
            )
            return shards
        run.sleep(interval)


def expected_points(manifest: Manifest, collection: str) -> tuple[int | None, int | None]:
    """The backup's point count of `collection`: (count, None) when exact, (low, high) when the
    collection was written to during the backup, (None, None) when the backup recorded none."""
    for record in manifest.points:
        if record.collection == collection:
            low, high = sorted((record.before, record.after))
            return low, (high if high != low else None)
    return None, None


def verify(run: Restore, manifest: Manifest, backed_up: str, target: str, shards: Shards) -> CollectionCheck:
    from memory_operator.api.restore import VERIFICATION_FAILED, CollectionCheck

    lonely = shards.without_active_replica()
    if lonely:
        raise RestoreError(
            f"collection {target}: shard(s) {', '.join(map(str, lonely))} "
            "have no active replica after the restore",
            VERIFICATION_FAILED,
        )
    points = run.nodes[0].count(target)
    low, high = expected_points(manifest, backed_up)
    check = CollectionCheck(
        collection=target,
        points=points,
        expected_points=low,
        expected_points_max=high,
        shards=len(shards.replicas),
    )
    if low is None:
        logger.warning(
            "backup %s recorded no point count of %s: count not checked", manifest.backup, backed_up
        )
    elif high is None and points != low:
        raise RestoreError(
            f"collection {target} holds {points} points after the restore and the backup holds {low}",
            VERIFICATION_FAILED,
        )
    elif high is not None and not low <= points <= high:
        raise RestoreError(
            f"collection {target} holds {points} points after the restore; the backup, written to while it "
            f"was taken, holds between {low} and {high}",
            VERIFICATION_FAILED,
        )
    return check


def restore_collection(run: Restore, manifest: Manifest, backed_up: str, target: str) -> None:
    from memory_operator.api.restore import SkippedCollection

    head = run.nodes[0]
    if not run.force and head.collection_info(target) is not None:
        points = head.count(target)
        if points:
            logger.info("%s already holds %d points: left as is", target, points)
            run.summary.skipped.append(SkippedCollection(collection=target, points=points))
            return
    for snapshot in snapshots_to_recover([s for s in manifest.snapshots if s.collection == backed_up]):
        recover(run, manifest, snapshot, target)
        # The next recovery starts from a cluster at rest: Qdrant resynchronises the replicas this one
        # marked dead before another snapshot replaces them.
        settle(run, target, final=False)
    shards = settle(run, target, final=True)
    if len(run.peer_ids) > 1:
        shards = replicate_to_factor(run, target)
    run.summary.verified.append(verify(run, manifest, backed_up, target, shards))


def replicate_to_factor(run: Restore, collection: str) -> Shards:
    """Copy active replicas onto the store's peers until every shard has the collection's replication
    factor again (the empty replicas dropped by `settle` leave some short)."""
    from memory_operator.collection.setup import replicate

    info = run.nodes[0].collection_info(collection)
    factor = (info.config.params.replication_factor or 1) if info is not None else 1
    outcome = replicate(run.nodes[0], collection, factor, run.peer_ids, run.wait_timeout, run.sleep)
    if outcome.under_replicated:
        logger.warning(
            "%s: shard(s) %s have fewer than %d active replicas",
            collection,
            ", ".join(map(str, outcome.under_replicated)),
            factor,
        )
    return shards_of(run.nodes[0], collection)


def restore(run: Restore) -> None:
    """Restore the backup; what happened goes to `run.summary` (errors are raised)."""
    from memory_operator.api.restore import NODE_COUNT_MISMATCH
    from memory_operator.qdrant_node import wait_for_cluster

    manifest = find_manifest(run.destination, run.store, run.backup, run.source_store)
    run.manifest = manifest
    run.summary.location = run.destination.location(manifest.store, manifest.backup)
    node_count = max((s.node for s in manifest.snapshots), default=0) + 1
    if node_count != len(run.nodes):
        raise RestoreError(
            f"backup {run.backup} was taken on {node_count} Qdrant node(s) and this store has "
            f"{len(run.nodes)}: restore into a store with as many nodes",
            NODE_COUNT_MISMATCH,
        )
    run.peer_ids = [peer for peer in wait_for_cluster(list(run.nodes), run.wait_timeout) if peer is not None]
    backup_version, store_version = check_versions(manifest, [node.version() for node in run.nodes])
    run.summary.backup_qdrant_version = backup_version
    run.summary.store_qdrant_version = store_version
    target = run.collection or manifest.collection
    backed_up = sorted(
        {s.collection for s in manifest.snapshots}, key=lambda c: (c != manifest.collection, c)
    )
    for collection in backed_up:
        restore_collection(
            run, manifest, collection, target_collection(collection, manifest.collection, target)
        )
    reapply_erasures(run, target)


def reapply_erasures(run: Restore, collection: str) -> None:
    """Erase again the subjects of the erasures the backup may still hold, before the server starts."""
    from memory_operator.api.restore import ERASURE_FAILED
    from memory_operator.erase.core import reapply
    from memory_operator.erase.main import outage
    from memory_operator.qdrant_node import QdrantError

    if not run.reapply:
        return
    subjects = [(e.name, e.subject.payload_key, e.subject.value) for e in run.reapply]
    try:
        done = reapply(run.nodes[0].client, collection, subjects)
    except Exception as error:
        if not outage(error) and not isinstance(error, QdrantError):
            raise
        # The error's kind only: Qdrant's message may quote the filter, and so a subject.
        raise RestoreError(
            f"re-applying {len(subjects)} MemoryErasure(s) failed: {type(error).__name__}", ERASURE_FAILED
        ) from error
    run.summary.erasures_reapplied = len(done.names)
    run.summary.erasures_deleted = done.memories
    run.summary.erasures = done.names
    logger.info(
        "re-applied %d MemoryErasure(s): %d memories and %d related records deleted",
        len(done.names),
        done.memories,
        done.related,
    )


def erasures_to_reapply(path: Path | None) -> list[ErasureEntry]:
    """The `reapply` list of the erasures file; none without a file (an operator that gives none)."""
    from memory_operator.erase.main import load_file

    if path is None:
        return []
    return list(load_file(path).reapply)


def _failure_reason(error: Exception) -> str:
    from memory_operator.api import restore as reasons
    from memory_operator.backup import settings
    from memory_operator.backup.destination import DestinationError
    from memory_operator.backup.streams import ChecksumMismatch

    if isinstance(error, RestoreError):
        return error.reason
    if isinstance(error, settings.SettingsError):
        return reasons.INVALID_SETTINGS
    if isinstance(error, DestinationError):
        return reasons.DESTINATION_ERROR
    if isinstance(error, ChecksumMismatch):
        return reasons.CHECKSUM_MISMATCH
    return reasons.QDRANT_ERROR


def run(args: argparse.Namespace) -> int:
    from memory_operator.api.restore import INVALID_SETTINGS, RestoreSummary
    from memory_operator.backup import settings
    from memory_operator.backup.destination import DestinationError
    from memory_operator.backup.streams import ChecksumMismatch
    from memory_operator.backup.summary import configure_logging, emit_summary, now, rfc3339
    from memory_operator.erase.main import ErasureError
    from memory_operator.qdrant_node import QdrantError, QdrantNode

    configure_logging(args.verbose)
    if not args.store:
        logger.error("--store (or %s) is required", env.STORE_NAME)
        return 2
    summary = RestoreSummary(store=args.store, backup=args.backup, start_time=rfc3339(now()))
    nodes: list[QdrantNode] = []
    try:
        api_key = env.get(env.QDRANT_API_KEY)
        # The operator gives the backup's store and location, from its MemoryBackup.
        source_store = args.source_store
        location = env.get(env.BACKUP_LOCATION)
        if settings.has_destination() or not (location and source_store):
            destination = settings.destination()
        else:
            destination = settings.destination_at(location, source_store, args.backup)
        erasures_file = args.erasures_file or (Path(f) if (f := env.get(env.ERASURES_FILE)) else None)
        reapply = erasures_to_reapply(erasures_file)
        nodes = [QdrantNode(url, api_key) for url in settings.qdrant_peers()]
        restore(
            Restore(
                destination=destination,
                store=args.store,
                backup=args.backup,
                source_store=source_store,
                collection=env.get(env.COLLECTION),
                nodes=nodes,
                wait_timeout=args.wait_timeout,
                summary=summary,
                force=args.force,
                reapply=reapply,
            )
        )
        summary.phase = "Completed"
    except ErasureError as error:
        summary.error, summary.reason = str(error), INVALID_SETTINGS
        logger.error("restore of %s from backup %s failed: %s", args.store, args.backup, error)
    except (settings.SettingsError, RestoreError, QdrantError, DestinationError, ChecksumMismatch) as error:
        summary.error = str(error)
        summary.reason = _failure_reason(error)
        if isinstance(error, VersionMismatch):
            summary.backup_qdrant_version = error.backup_version
            summary.store_qdrant_version = error.store_version
        logger.error("restore of %s from backup %s failed: %s", args.store, args.backup, error)
    finally:
        for node in nodes:
            node.close()
    summary.stop_time = rfc3339(now())
    emit_summary(summary, args.termination_log)
    return 0 if summary.succeeded else 1
