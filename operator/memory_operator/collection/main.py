"""`memory-operator collection`: make the store's Qdrant collection as the spec says.

Run by the operator as a Job. It waits until every Qdrant peer (the `MEMORY_QDRANT_PEERS`) has joined
the cluster, or the single node answers `/readyz`; then, for the store's collection and (by default)
mem0's `<collection>_entities`:

- creates it when missing, as mem0 would (vectors, sparse vector, payload indexes) with the spec's shard
  number, replication factor and on-disk setting, so that the memory server finds it ready;
- on a live collection, changes what Qdrant can change (on-disk vectors, replication factor), adds
  missing payload indexes, and reports what it cannot change (shard number, a missing sparse vector);
  vectors of another size or distance fail the job: the server could not use the collection;
- in distributed mode, has Qdrant replicate shards onto the store's peers until every shard has
  `replicationFactor` active replicas (after a scale-up, say).

Its summary (`memory_operator.api.collection.CollectionSetupSummary`) goes to stdout and to the
termination log; the exit code is 1 when it failed.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from memory_operator import env

if TYPE_CHECKING:
    from memory_operator.api.collection import CollectionSetupSummary, UpgradeCheckSummary
    from memory_operator.collection.settings import CollectionSettings
    from memory_operator.qdrant_node import QdrantNode

logger = logging.getLogger("memory_operator.collection")
DEFAULT_WAIT_SECONDS = 600.0


def configure(parser: argparse.ArgumentParser) -> None:
    from memory_operator.backup.summary import add_summary_arguments

    parser.epilog = (
        f"Settings come from the environment: {env.QDRANT_PEERS} (or {env.QDRANT_URL} for one node), "
        f"{env.QDRANT_API_KEY}, {env.COLLECTION}, {env.COLLECTION_VECTOR_SIZE}, {env.COLLECTION_DISTANCE}, "
        f"{env.COLLECTION_ON_DISK}, {env.COLLECTION_SHARD_NUMBER}, {env.COLLECTION_REPLICATION_FACTOR} "
        f"and {env.COLLECTION_ENTITIES}."
    )
    parser.add_argument(
        "--wait-timeout",
        type=float,
        default=DEFAULT_WAIT_SECONDS,
        help="seconds to wait for every peer to join, and again for shard transfers "
        f"(default {DEFAULT_WAIT_SECONDS:g})",
    )
    add_summary_arguments(parser)


def set_up(
    nodes: list[QdrantNode],
    settings: CollectionSettings,
    summary: CollectionSetupSummary,
    wait_timeout: float,
) -> None:
    """Do the job; what it did goes to `summary`, failures are raised (with `summary.reason` set)."""
    from memory_operator.api import collection as reasons
    from memory_operator.collection.setup import ensure_collection, replicate
    from memory_operator.qdrant_node import QdrantError, wait_for_cluster

    summary.reason = reasons.CLUSTER_NOT_READY
    peer_ids = wait_for_cluster(nodes, wait_timeout)
    summary.peers = len(nodes)
    summary.reason = reasons.QDRANT_ERROR
    live = [peer for peer in peer_ids if peer is not None]
    for name in settings.collections:
        outcome = ensure_collection(nodes[0], settings, name)
        summary.collections.append(outcome)
        if len(live) > 1:
            replication = replicate(nodes[0], name, settings.replication_factor, live, wait_timeout)
            outcome.replications = replication.replications
            outcome.under_replicated_shards = replication.under_replicated
    short = [
        f"{o.name} shard(s) {', '.join(map(str, o.under_replicated_shards))}"
        for o in summary.collections
        if o.under_replicated_shards
    ]
    if short:
        summary.reason = reasons.REPLICATION_INCOMPLETE
        raise QdrantError(
            f"fewer than {settings.replication_factor} active replicas remain for {'; '.join(short)} "
            f"after {wait_timeout:g}s (too few live peers, or transfers still running)"
        )
    summary.reason = None


def run(args: argparse.Namespace) -> int:
    from memory_operator.api import collection as reasons
    from memory_operator.api.collection import CollectionSetupSummary
    from memory_operator.backup.summary import configure_logging, now, rfc3339
    from memory_operator.collection import settings as settings_
    from memory_operator.collection.setup import IncompatibleCollection

    configure_logging(args.verbose)
    summary = CollectionSetupSummary(start_time=rfc3339(now()))
    return on_peers(
        lambda nodes: set_up(nodes, settings_.collection_settings(), summary, args.wait_timeout),
        summary,
        args.termination_log,
        failure="collection setup failed",
        refusals={IncompatibleCollection: reasons.INCOMPATIBLE_COLLECTION},
    )


def on_peers(
    work: Callable[[list[QdrantNode]], None],
    summary: CollectionSetupSummary | UpgradeCheckSummary,
    termination_log: Path | None,
    failure: str,
    refusals: Mapping[type[Exception], str] = {},
) -> int:
    """Run `work` on a client of every Qdrant peer; its outcome, with the reason of a failure (the
    `refusals` map errors of its own to theirs), goes to `summary`, then out as the job's result."""
    from memory_operator.api import collection as reasons
    from memory_operator.backup.settings import SettingsError
    from memory_operator.backup.summary import emit_summary, now, rfc3339
    from memory_operator.collection import settings as settings_
    from memory_operator.qdrant_node import QdrantError, QdrantNode

    nodes: list[QdrantNode] = []
    try:
        api_key = env.get(env.QDRANT_API_KEY)
        nodes = [QdrantNode(url, api_key) for url in settings_.peers()]
        work(nodes)
        summary.phase = "Completed"
    except SettingsError as error:
        summary.reason, summary.error = reasons.INVALID_SETTINGS, str(error)
    except tuple(refusals) as error:
        reason = next(r for kind, r in refusals.items() if isinstance(error, kind))
        summary.reason, summary.error = reason, str(error)
    except QdrantError as error:
        summary.reason, summary.error = summary.reason or reasons.QDRANT_ERROR, str(error)
    finally:
        for node in nodes:
            node.close()
    if summary.error:
        logger.error("%s (%s): %s", failure, summary.reason, summary.error)
    summary.stop_time = rfc3339(now())
    emit_summary(summary, termination_log)
    return 0 if summary.succeeded else 1
