"""One Qdrant node (a peer in distributed mode), reached at its own URL, through qdrant-client.

Every call goes through qdrant-client's REST methods, whose requests and answers are Qdrant's OpenAPI
models. Two do not, and use plain HTTP: downloading a snapshot file, which the client can only read
whole into memory (`download_snapshot` streams it), and `/readyz`, whose plain-text answer the client
cannot parse (`is_ready`). Uploads go through the client's generated multipart call, which streams the
file object it is given.

Errors come out as `QdrantError` (or `NotFound`), with the node's URL and Qdrant's own reason.

Over `https` every call verifies the node's certificate: qdrant-client's REST client and the plain
HTTP client share one SSL context, from the store's CA bundle (`memory_operator.tls`).
"""

from __future__ import annotations

import contextlib
import io
import json
import ssl
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, TypeVar, cast
from urllib.parse import quote

import httpx
from qdrant_client import QdrantClient
from qdrant_client.http import models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from memory_operator import tls

# Snapshots, recoveries and shard transfers of large collections take long; reading state must not.
LONG_TIMEOUT_SECONDS = 3600
SHORT_TIMEOUT_SECONDS = 30
CHUNK_SIZE = 1024 * 1024
# Without `spec.tls`, in-cluster traffic to Qdrant is plain HTTP inside the store's NetworkPolicy.
INSECURE_KEY_WARNING = "Api key is used with an insecure connection."

T = TypeVar("T")


class QdrantError(Exception):
    """A Qdrant node refused or failed a call; the message names the node and the reason."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotFound(QdrantError):
    """The collection or snapshot does not exist."""


def minor_version(version: str | None) -> str | None:
    """`1.16` of `1.16.3` (or of `v1.16.3-unprivileged`); `None` when it cannot be told."""
    if not version:
        return None
    parts = version.strip().lstrip("v").split("-", 1)[0].split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
        return None
    return f"{int(parts[0])}.{int(parts[1])}"


def qdrant_client(
    url: str, api_key: str | None, timeout: int, context: ssl.SSLContext | None = None
) -> QdrantClient:
    """A REST client of the node at `url`, verifying its certificate over `https`."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=INSECURE_KEY_WARNING)
        # The project checks versions itself (restore refuses another minor); no call at construction.
        return QdrantClient(
            url=url,
            api_key=api_key,
            timeout=timeout,
            check_compatibility=False,
            verify=tls.verify(url, context),
        )


class QdrantNode:
    """One Qdrant node. `client` is for long operations (snapshots, recoveries), `quick` for the rest."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        long_timeout: int = LONG_TIMEOUT_SECONDS,
        short_timeout: int = SHORT_TIMEOUT_SECONDS,
        context: ssl.SSLContext | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        verify = tls.verify(self.url, context)
        shared = verify if isinstance(verify, ssl.SSLContext) else None
        self.client = qdrant_client(self.url, api_key, long_timeout, shared)
        self.quick = qdrant_client(self.url, api_key, short_timeout, shared)
        headers = {"api-key": api_key} if api_key else {}
        self._http = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(connect=10.0, read=long_timeout, write=long_timeout, pool=30.0),
            verify=verify,
        )

    def close(self) -> None:
        self.client.close()
        self.quick.close()
        self._http.close()

    def __enter__(self) -> QdrantNode:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------------

    def _failure(self, status: int | None, detail: str, doing: str) -> QdrantError:
        if status in (401, 403):
            return QdrantError(
                f"Qdrant at {self.url} refused {doing}: HTTP {status} "
                "(wrong or missing API key, or a read-only key)",
                status,
            )
        kind = NotFound if status == 404 else QdrantError
        return kind(f"Qdrant at {self.url} failed {doing}: HTTP {status}: {detail[:500]}", status)

    def _unexpected(self, error: UnexpectedResponse, doing: str) -> QdrantError:
        detail = error.content.decode(errors="replace").strip()
        with contextlib.suppress(ValueError, AttributeError, TypeError, KeyError):
            detail = str(json.loads(error.content)["status"]["error"])
        return self._failure(error.status_code, detail, doing)

    def _call(self, doing: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except UnexpectedResponse as error:
            raise self._unexpected(error, doing) from error
        except ResponseHandlingException as error:
            source = error.source
            if isinstance(source, httpx.HTTPError):
                raise QdrantError(f"Qdrant at {self.url} is unreachable ({doing}): {source}") from error
            raise QdrantError(
                f"Qdrant at {self.url} sent an unreadable answer to {doing}: {source}"
            ) from error
        except httpx.HTTPError as error:
            raise QdrantError(f"Qdrant at {self.url} is unreachable ({doing}): {error}") from error

    # -- node and cluster -----------------------------------------------------------------------

    def version(self) -> str:
        """The node's Qdrant version (`GET /`, which needs no API key)."""
        return self._call("reading its version", self.quick.info).version

    def is_ready(self) -> bool:
        """Whether `/readyz` answers 200: in distributed mode, the node caught up with consensus.

        Plain HTTP: Qdrant answers in plain text ("all shards are ready"), which qdrant-client's
        `readyz` tries to parse as JSON and fails on.
        """
        try:
            return self._http.get("/readyz", timeout=SHORT_TIMEOUT_SECONDS).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_until_ready(self, timeout: float, interval: float = 1.0) -> None:
        """Wait for `/readyz` (the node may be starting beside the job)."""
        deadline = time.monotonic() + timeout
        while not self.is_ready():
            if time.monotonic() > deadline:
                raise QdrantError(f"Qdrant at {self.url} did not become ready (/readyz) within {timeout:g}s")
            time.sleep(interval)

    def cluster_status(self) -> models.ClusterStatusOneOf | models.ClusterStatusOneOf1:
        return self._call("reading the cluster status", self.quick.cluster_status)

    def peer_id(self) -> int | None:
        """This node's peer id in distributed mode; `None` when cluster mode is off."""
        status = self.cluster_status()
        return status.peer_id if isinstance(status, models.ClusterStatusOneOf1) else None

    # -- collections ----------------------------------------------------------------------------

    def collections(self) -> list[str]:
        result = self._call("listing collections", self.quick.get_collections)
        return sorted(c.name for c in result.collections)

    def collection_exists(self, collection: str) -> bool:
        return self._call(
            f"checking collection {collection}", lambda: self.quick.collection_exists(collection)
        )

    def collection_info(self, collection: str) -> models.CollectionInfo | None:
        """The collection's configuration and statistics; `None` when it does not exist."""
        try:
            return self._call(
                f"reading collection {collection}", lambda: self.quick.get_collection(collection)
            )
        except NotFound:
            return None

    def count(self, collection: str) -> int:
        """Exact number of points (every shard, through this node)."""
        result = self._call(
            f"counting the points of {collection}", lambda: self.client.count(collection, exact=True)
        )
        return result.count

    def cluster_info(self, collection: str) -> models.CollectionClusterInfo | None:
        """Shards and replicas of the collection as this node sees them; `None` when it does not exist."""
        try:
            return self._call(
                f"reading the shards of {collection}", lambda: self.quick.collection_cluster_info(collection)
            )
        except NotFound:
            return None

    def create_collection(self, collection: str, **settings: Any) -> None:
        self._call(
            f"creating collection {collection}",
            lambda: self.client.create_collection(collection, timeout=LONG_TIMEOUT_SECONDS, **settings),
        )

    def update_collection(self, collection: str, **settings: Any) -> None:
        self._call(
            f"updating collection {collection}",
            lambda: self.client.update_collection(collection, timeout=LONG_TIMEOUT_SECONDS, **settings),
        )

    def create_payload_index(self, collection: str, field: str, schema: models.PayloadSchemaType) -> None:
        self._call(
            f"indexing {field} of {collection}",
            lambda: self.client.create_payload_index(
                collection, field_name=field, field_schema=schema, wait=True
            ),
        )

    def replicate_shard(self, collection: str, shard_id: int, from_peer: int, to_peer: int) -> None:
        operation = models.ReplicateShardOperation(
            replicate_shard=models.ReplicateShard(
                shard_id=shard_id, from_peer_id=from_peer, to_peer_id=to_peer
            )
        )
        self._call(
            f"replicating shard {shard_id} of {collection} from peer {from_peer} to peer {to_peer}",
            lambda: self.client.cluster_collection_update(collection, operation),
        )

    def drop_replica(self, collection: str, shard_id: int, peer: int) -> None:
        operation = models.DropReplicaOperation(drop_replica=models.Replica(shard_id=shard_id, peer_id=peer))
        self._call(
            f"dropping the replica of shard {shard_id} of {collection} on peer {peer}",
            lambda: self.client.cluster_collection_update(collection, operation),
        )

    # -- snapshots ------------------------------------------------------------------------------

    def create_snapshot(self, collection: str) -> models.SnapshotDescription:
        description = self._call(
            f"creating a snapshot of {collection}", lambda: self.client.create_snapshot(collection, wait=True)
        )
        if description is None:  # only without `wait`
            raise QdrantError(f"Qdrant at {self.url} described no snapshot of {collection}")
        return description

    def list_snapshots(self, collection: str) -> list[models.SnapshotDescription]:
        return self._call(f"listing snapshots of {collection}", lambda: self.quick.list_snapshots(collection))

    def delete_snapshot(self, collection: str, name: str) -> None:
        self._call(
            f"deleting snapshot {name} of {collection}",
            lambda: self.client.delete_snapshot(collection, name, wait=True),
        )

    @contextlib.contextmanager
    def download_snapshot(self, collection: str, name: str) -> Iterator[Iterator[bytes]]:
        """The snapshot file's bytes, streamed in chunks.

        Plain HTTP: qdrant-client's `get_snapshot` reads the whole file into memory, and snapshots are
        as large as the collection's share on this node.
        """
        doing = f"downloading snapshot {name} of {collection}"
        path = "/" + "/".join(quote(p, safe="") for p in ("collections", collection, "snapshots", name))
        try:
            with self._http.stream("GET", path) as response:
                if response.is_error:
                    response.read()
                    detail = response.text.strip()
                    with contextlib.suppress(ValueError, AttributeError, TypeError, KeyError):
                        detail = str(response.json()["status"]["error"])
                    raise self._failure(response.status_code, detail, doing)
                yield response.iter_bytes(CHUNK_SIZE)
        except httpx.HTTPError as error:
            raise QdrantError(f"Qdrant at {self.url} is unreachable ({doing}): {error}") from error

    def recover_from_upload(
        self,
        collection: str,
        snapshot: IO[bytes] | io.RawIOBase,
        checksum: str | None,
        priority: models.SnapshotPriority = models.SnapshotPriority.SNAPSHOT,
    ) -> None:
        """Recover `collection` on this node from `snapshot`, uploaded as multipart and streamed.

        Qdrant keeps the file in its snapshots folder under the upload's file name (`snapshot.name`),
        and verifies `checksum` before it touches the collection.
        """
        verify = {"checksum": checksum} if checksum else {}
        self._call(
            f"recovering {collection} from an uploaded snapshot",
            lambda: self.client.http.snapshots_api.recover_from_uploaded_snapshot(
                collection_name=collection,
                wait=True,
                priority=priority,
                snapshot=cast(IO[bytes], snapshot),
                **verify,
            ),
        )


def wait_for_cluster(nodes: list[QdrantNode], timeout: float, interval: float = 1.0) -> list[int | None]:
    """Wait until every node answers `/readyz` and, in distributed mode, every one has joined the cluster.

    Returns each node's peer id (`None` for a node with cluster mode off). Raises QdrantError naming what
    was still missing when `timeout` seconds have passed.
    """
    deadline = time.monotonic() + timeout
    while True:
        missing = _not_yet_joined(nodes)
        if missing is None:
            return [node.peer_id() for node in nodes]
        if time.monotonic() > deadline:
            raise QdrantError(f"the Qdrant cluster was not complete within {timeout:g}s: {missing}")
        time.sleep(interval)


def _not_yet_joined(nodes: list[QdrantNode]) -> str | None:
    """What keeps the cluster from being complete, or `None` when it is."""
    not_ready = [node.url for node in nodes if not node.is_ready()]
    if not_ready:
        return "not ready (/readyz): " + ", ".join(not_ready)
    if len(nodes) == 1:
        return None
    try:
        ids = [node.peer_id() for node in nodes]
        status = nodes[0].cluster_status()
    except QdrantError as error:
        return str(error)
    if any(peer is None for peer in ids) or not isinstance(status, models.ClusterStatusOneOf1):
        return "cluster mode is off on some node"
    joined = {int(peer) for peer in status.peers}
    absent = [node.url for node, peer in zip(nodes, ids, strict=True) if peer not in joined]
    if absent:
        return "not yet joined: " + ", ".join(absent)
    return None


@dataclass
class Shards:
    """Replica states of a collection's shards and the transfers under way, as one node reports them."""

    replicas: dict[int, dict[int, str]]
    transfers: list[tuple[int, int]]
    """(shard, receiving peer) of each transfer."""

    @classmethod
    def of(cls, info: models.CollectionClusterInfo) -> Shards:
        """From one node's `collection_cluster_info`: its own replicas and the other peers'."""
        replicas: dict[int, dict[int, str]] = {}
        for local in info.local_shards:
            replicas.setdefault(local.shard_id, {})[info.peer_id] = local.state.value
        for remote in info.remote_shards:
            replicas.setdefault(remote.shard_id, {})[remote.peer_id] = remote.state.value
        return cls(replicas, [(t.shard_id, t.to) for t in info.shard_transfers])

    def without_active_replica(self) -> list[int]:
        return sorted(s for s, peers in self.replicas.items() if "Active" not in peers.values())

    def stranded_partials(self) -> list[tuple[int, int]]:
        """(shard, peer) of `Partial` replicas no transfer is filling, on shards with an active replica."""
        return [
            (shard, peer)
            for shard, peers in sorted(self.replicas.items())
            for peer, state in sorted(peers.items())
            if state == "Partial" and "Active" in peers.values() and (shard, peer) not in self.transfers
        ]

    def at_rest(self) -> bool:
        """No transfer under way, and no dead replica waiting for one (Qdrant starts those itself)."""
        return not self.transfers and not any(
            state == "Dead" and "Active" in peers.values()
            for peers in self.replicas.values()
            for state in peers.values()
        )

    def active(self, shard: int) -> list[int]:
        """Peers holding an active replica of `shard`."""
        return sorted(peer for peer, state in self.replicas.get(shard, {}).items() if state == "Active")
