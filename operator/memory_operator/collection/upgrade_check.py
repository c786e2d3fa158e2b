"""`memory-operator upgrade-check`: between two nodes of a rolling Qdrant upgrade, wait until the cluster
is whole again.

The operator upgrades Qdrant one node at a time (the StatefulSet's partition). After a node restarted
on the new version, this Job waits until every peer answers `/readyz` and has joined, and every replica
of every shard of every collection is `Active` in every peer's view, with no transfer under way: a
restarted node's replicas come back `Dead` or `Partial` until Qdrant has synchronised them. Only then
does the operator restart the next node, so that no shard loses its last active replica.

Its summary (`memory_operator.api.collection.UpgradeCheckSummary`, with each peer's version) goes to
stdout and to the termination log; the exit code is 1 when the cluster was not whole in time.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from memory_operator import env

if TYPE_CHECKING:
    from memory_operator.api.collection import UpgradeCheckSummary
    from memory_operator.qdrant_node import QdrantNode

logger = logging.getLogger("memory_operator.upgrade_check")
DEFAULT_WAIT_SECONDS = 1800.0
ACTIVE = "Active"


def configure(parser: argparse.ArgumentParser) -> None:
    from memory_operator.backup.summary import add_summary_arguments

    parser.epilog = (
        f"Settings come from the environment: {env.QDRANT_PEERS} (or {env.QDRANT_URL} for one node) "
        f"and {env.QDRANT_API_KEY}."
    )
    parser.add_argument(
        "--wait-timeout",
        type=float,
        default=DEFAULT_WAIT_SECONDS,
        help="seconds to wait for every peer to join, and again for every replica to be active "
        f"(default {DEFAULT_WAIT_SECONDS:g})",
    )
    add_summary_arguments(parser)


def inactive_replicas(nodes: Sequence[QdrantNode]) -> list[str]:
    """Every replica some peer does not report active, and every transfer under way, as sentences."""
    from memory_operator.qdrant_node import Shards

    found: set[str] = set()
    for name in nodes[0].collections():
        for node in nodes:
            info = node.cluster_info(name)
            if info is None:
                found.add(f"{name} is missing on {node.url}")
                continue
            shards = Shards.of(info)
            for shard, peers in shards.replicas.items():
                found.update(
                    f"{name} shard {shard} on peer {peer}: {state}"
                    for peer, state in peers.items()
                    if state != ACTIVE
                )
            found.update(
                f"{name} shard {shard} is being copied to peer {peer}" for shard, peer in shards.transfers
            )
    return sorted(found)


def wait_until_whole(
    nodes: Sequence[QdrantNode],
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
    interval: float = 2.0,
) -> list[str]:
    """Wait until no replica is inactive; what still is when `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        inactive = inactive_replicas(nodes)
        if not inactive or time.monotonic() > deadline:
            return inactive
        logger.info("waiting for %d replicas or transfers: %s", len(inactive), "; ".join(inactive[:5]))
        sleep(interval)


def check(nodes: list[QdrantNode], summary: UpgradeCheckSummary, wait_timeout: float) -> None:
    """Do the job; what it found goes to `summary`, failures are raised (with `summary.reason` set)."""
    from memory_operator.api import collection as reasons
    from memory_operator.qdrant_node import QdrantError, wait_for_cluster

    summary.reason = reasons.CLUSTER_NOT_READY
    wait_for_cluster(nodes, wait_timeout)
    summary.reason = reasons.QDRANT_ERROR
    summary.versions = [node.version() for node in nodes]
    summary.inactive = wait_until_whole(nodes, wait_timeout)
    if summary.inactive:
        summary.reason = reasons.SHARDS_NOT_ACTIVE
        raise QdrantError(
            f"{len(summary.inactive)} replicas or transfers were not active after {wait_timeout:g}s, "
            f"first {summary.inactive[0]}"
        )
    summary.reason = None


def run(args: argparse.Namespace) -> int:
    from memory_operator.api.collection import UpgradeCheckSummary
    from memory_operator.backup.summary import configure_logging, now, rfc3339
    from memory_operator.collection.main import on_peers

    configure_logging(args.verbose)
    summary = UpgradeCheckSummary(start_time=rfc3339(now()))
    return on_peers(
        lambda nodes: check(nodes, summary, args.wait_timeout),
        summary,
        args.termination_log,
        failure="the Qdrant cluster is not whole",
    )
