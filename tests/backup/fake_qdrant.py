"""A fake Qdrant: one or more nodes on 127.0.0.1 that behave like Qdrant where the project depends on it.

Modelled on Qdrant's source (v1.16: `storage/src/content_manager/snapshots/recover.rs`, the actix
snapshot API, `collection/src/collection/snapshots.rs`) and checked against qdrant-client's generated
API (`qdrant_contract`): only Qdrant's operations are served, every request must fit them (path, query
parameters, JSON body by its model) and every JSON answer must parse as the model qdrant-client reads it
with, without unknown keys. What does not fit is recorded in `FakeCluster.violations` (the tests' fixture
fails on any) and answered with an error.

What it models:

- A cluster's shared (consensus) state per collection: parameters, payload index schema, and for every
  shard its replicas, one per peer, each `Active`, `Partial` or `Dead`; shard transfers that complete
  after a few requests (`transfer_ticks`), and `Dead` replicas that Qdrant resynchronises by itself.
- Each peer's local data: the points of the shard replicas it holds. Points go to shards by a hash of
  their id.
- Collection snapshots as files in each peer's snapshots folder: a tar of the collection's config,
  payload indexes and, for each shard, the points of the peer's own replica only (a remote shard has no
  data). Named `<collection>-<peer id>-<UTC second>.snapshot`, so a second snapshot in the same second
  replaces the first, with a `.checksum` file beside it, as Qdrant does.
- Recovery from an upload, as Qdrant: the file is kept in the snapshots folder under the upload's file
  name; the `checksum` (64 hexadecimal digits, compared without regard to case) is verified first; a
  missing collection is created on every peer from the snapshot's config (shards placed by the cluster,
  not as in the snapshot); an existing one with other vectors or shard number is refused; the peer's
  own replicas go `Partial`; each shard the snapshot holds data for is installed, then activated
  according to `priority` (`replica`, the default, resynchronises from another active replica; `snapshot`
  drops or kills the others; `no_sync` keeps them); shards with no data are skipped (left `Partial`).
- `/readyz` (503 until a peer is ready and has joined), `/cluster`, the api-key check (header or bearer;
  401 when missing or wrong, 403 for writes with the read-only key; `/` and the probes are open).
- Points by filter, as erasures use them: counted, scrolled, retrieved, given payload and deleted
  (every replica of their shard), filters of `match` value or any, `is_empty`, and nested
  `must`/`should`/`must_not`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import hashlib
import io
import json
import os
import random
import re
import shutil
import socket
import tarfile
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from backup import qdrant_contract

VERSION = "1.16.3"
OPEN_PATHS = {"/", "/healthz", "/livez", "/readyz"}
ACTIVE, PARTIAL, DEAD = "Active", "Partial", "Dead"
SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
PRIORITIES = ("no_sync", "snapshot", "replica")
CHUNK = 1024 * 1024

Points = dict[str, dict[str, Any]]
# Every cluster made, so that a fixture can fail a test whose requests or answers broke the contract.
CLUSTERS: list[FakeCluster] = []


class Refused(Exception):
    """Qdrant answers this request with an error."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def shard_of(point_id: str, shard_number: int) -> int:
    return zlib.crc32(str(point_id).encode()) % shard_number


def default_params(
    vector_size: int = 4, shard_number: int = 1, replication_factor: int = 1
) -> dict[str, Any]:
    return {
        "vectors": {"size": vector_size, "distance": "Cosine"},
        "shard_number": shard_number,
        "replication_factor": replication_factor,
        "write_consistency_factor": 1,
        "on_disk_payload": True,
    }


@dataclass
class Transfer:
    shard_id: int
    source: int
    target: int
    sync: bool
    ticks: int


@dataclass
class ClusterCollection:
    """What consensus knows of a collection."""

    params: dict[str, Any]
    payload_schema: dict[str, Any] = field(default_factory=dict)
    replicas: dict[int, dict[int, str]] = field(default_factory=dict)
    transfers: list[Transfer] = field(default_factory=list)


class FakeCluster:
    """The shared state of one Qdrant cluster (or of one node with cluster mode off)."""

    def __init__(
        self,
        size: int = 1,
        api_key: str | None = None,
        read_only_api_key: str | None = None,
        distributed: bool | None = None,
        root: Path | None = None,
    ) -> None:
        CLUSTERS.append(self)
        self.lock = threading.RLock()
        self.distributed = size > 1 if distributed is None else distributed
        self.collections: dict[str, ClusterCollection] = {}
        self.violations: list[str] = []
        # Every upload recovered or refused, in order: peer ordinal, collection, query, file name.
        self.recoveries: list[dict[str, Any]] = []
        self.transfer_ticks = 2
        self.placement_offset = 0
        self.clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC)
        self._root = root
        self._own_root: str | None = None
        self.peers = [
            FakeQdrant(api_key=api_key, read_only_api_key=read_only_api_key, cluster=self, ordinal=i)
            for i in range(size)
        ]

    def root(self) -> Path:
        if self._root is None:
            self._own_root = tempfile.mkdtemp(prefix="fake-qdrant-")
            self._root = Path(self._own_root)
        return self._root

    def start(self) -> FakeCluster:
        for peer in self.peers:
            peer.start()
        return self

    def stop(self) -> None:
        for peer in self.peers:
            peer.stop()
        self.stop_root()

    def stop_root(self) -> None:
        """Remove the snapshots folders, unless the test gave them."""
        if self._own_root:
            shutil.rmtree(self._own_root, ignore_errors=True)

    def peer(self, peer_id: int) -> FakeQdrant:
        return next(p for p in self.peers if p.peer_id == peer_id)

    def joined(self) -> list[FakeQdrant]:
        return [p for p in self.peers if p.joined]

    # -- test controls ----------------------------------------------------------------------------

    def create_collection(
        self,
        name: str,
        points: Points | None = None,
        *,
        shard_number: int = 1,
        replication_factor: int = 1,
        vector_size: int = 4,
        payload_schema: dict[str, Any] | None = None,
    ) -> None:
        """A collection placed by the cluster, holding `points` on every replica."""
        with self.lock:
            self._create(
                name, default_params(vector_size, shard_number, replication_factor), payload_schema or {}
            )
            self.upsert(name, points or {})

    def upsert(self, name: str, points: Points) -> None:
        """Write points as Qdrant does: to every replica of their shard."""
        with self.lock:
            found = self.collections[name]
            for point_id, point in points.items():
                shard = shard_of(point_id, found.params["shard_number"])
                for peer_id in found.replicas[shard]:
                    self.peer(peer_id).local[name].setdefault(shard, {})[str(point_id)] = copy.deepcopy(point)

    def points(self, name: str) -> Points | None:
        """Every point of the collection, read from one active replica of each shard."""
        with self.lock:
            found = self.collections.get(name)
            if found is None:
                return None
            result: Points = {}
            for shard, peers in found.replicas.items():
                active = [p for p, state in peers.items() if state == ACTIVE]
                if active:
                    result.update(self.peer(active[0]).local.get(name, {}).get(shard, {}))
            return result

    def delete_points(self, name: str, ids: list[str]) -> None:
        """Delete points from every replica of their shards."""
        with self.lock:
            for peer in self.peers:
                for shard_points in peer.local.get(name, {}).values():
                    for point_id in ids:
                        shard_points.pop(point_id, None)

    def drop_collection(self, name: str) -> None:
        with self.lock:
            self.collections.pop(name, None)
            for peer in self.peers:
                peer.local.pop(name, None)

    def replica_states(self, name: str) -> dict[int, dict[int, str]]:
        """Shard -> peer ordinal -> state."""
        with self.lock:
            found = self.collections[name]
            ordinal = {p.peer_id: p.ordinal for p in self.peers}
            return {s: {ordinal[p]: st for p, st in peers.items()} for s, peers in found.replicas.items()}

    # -- consensus --------------------------------------------------------------------------------

    def _placement(self, shard_number: int, replication_factor: int) -> dict[int, dict[int, str]]:
        """Shard `i` on `replication_factor` joined peers from ordinal `i + placement_offset` on."""
        pool = self.joined() or self.peers
        count = min(replication_factor, len(pool))
        return {
            shard: {
                pool[(shard + self.placement_offset + j) % len(pool)].peer_id: ACTIVE for j in range(count)
            }
            for shard in range(shard_number)
        }

    def _create(self, name: str, params: dict[str, Any], payload_schema: dict[str, Any]) -> ClusterCollection:
        created = ClusterCollection(
            params=params,
            payload_schema=dict(payload_schema),
            replicas=self._placement(params["shard_number"], params["replication_factor"]),
        )
        self.collections[name] = created
        for peer in self.peers:
            peer.local[name] = {}
        for shard, peers in created.replicas.items():
            for peer_id in peers:
                self.peer(peer_id).local[name][shard] = {}
        return created

    def tick(self) -> None:
        """Time passing in the cluster: transfers advance and complete; dead replicas get resynchronised."""
        with self.lock:
            for name, found in self.collections.items():
                for transfer in list(found.transfers):
                    transfer.ticks -= 1
                    if transfer.ticks > 0:
                        continue
                    found.transfers.remove(transfer)
                    source = self.peer(transfer.source).local[name].get(transfer.shard_id, {})
                    self.peer(transfer.target).local[name][transfer.shard_id] = copy.deepcopy(source)
                    if transfer.target in found.replicas[transfer.shard_id]:
                        found.replicas[transfer.shard_id][transfer.target] = ACTIVE
                for shard, peers in found.replicas.items():
                    active = [p for p, state in peers.items() if state == ACTIVE]
                    for peer_id, state in peers.items():
                        busy = any(t.shard_id == shard and t.target == peer_id for t in found.transfers)
                        if state == DEAD and active and not busy:
                            found.transfers.append(
                                Transfer(shard, active[0], peer_id, True, self.transfer_ticks)
                            )

    def _cancel_transfers(self, found: ClusterCollection, shard: int, peer_id: int) -> None:
        found.transfers = [t for t in found.transfers if not (t.shard_id == shard and t.target == peer_id)]


class FakeQdrant:
    """One Qdrant node on 127.0.0.1, served by uvicorn from a thread."""

    def __init__(
        self,
        api_key: str | None = None,
        read_only_api_key: str | None = None,
        cluster: FakeCluster | None = None,
        ordinal: int = 0,
    ) -> None:
        self.api_key = api_key
        self.read_only_api_key = read_only_api_key
        self.cluster = cluster if cluster is not None else FakeCluster(0, api_key, read_only_api_key)
        if cluster is None:
            self.cluster.peers.append(self)
        self.ordinal = ordinal
        self.peer_id = random.randrange(10**15, 10**16)
        self.version = VERSION
        self.ready = True
        self.joined = True
        self.corrupt_downloads = False
        # Called after each snapshot this node makes (collection, name): lets a test act as another
        # client taking a snapshot of the same collection in the same second.
        self.after_snapshot: Callable[[str, str], None] | None = None
        self.local: dict[str, dict[int, Points]] = {}
        self.requests: list[tuple[str, str]] = []
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def snapshots_dir(self) -> Path:
        return self.cluster.root() / f"node-{self.ordinal}" / "snapshots"

    # -- test controls (a single node's; a cluster's are on FakeCluster) --------------------------

    def create_collection(self, name: str, points: Points | None = None, **settings: Any) -> None:
        self.cluster.create_collection(name, points, **settings)

    def points(self, name: str) -> Points | None:
        return self.cluster.points(name)

    def drop_collection(self, name: str) -> None:
        self.cluster.drop_collection(name)

    @property
    def violations(self) -> list[str]:
        return self.cluster.violations

    def local_points(self, name: str) -> Points:
        """The points of this node's own replicas."""
        with self.cluster.lock:
            result: Points = {}
            for points in self.local.get(name, {}).values():
                result.update(points)
            return result

    def stored_snapshots(self, name: str) -> list[str]:
        """Files in this node's snapshots folder for the collection (snapshots and kept uploads)."""
        folder = self.snapshots_dir / name
        return sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []

    def snapshot_bytes(self, name: str) -> bytes:
        """A snapshot of the collection on this node, as `create_snapshot` writes it (for tests)."""
        with self.cluster.lock:
            return self._snapshot_tar(name)

    # -- serving ----------------------------------------------------------------------------------

    def start(self) -> FakeQdrant:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        config = uvicorn.Config(self, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-qdrant", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the fake Qdrant did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
        if self.cluster.peers == [self]:
            self.cluster.stop_root()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        response = await self._handle(request)
        await response(scope, receive, send)

    def _violation(self, message: str) -> None:
        with self.cluster.lock:
            self.cluster.violations.append(message)

    def _denied(self, request: Request) -> Response | None:
        if not self.api_key or request.url.path in OPEN_PATHS:
            return None
        given = request.headers.get("api-key")
        bearer = request.headers.get("authorization", "")
        if not given and bearer.lower().startswith("bearer "):
            given = bearer[7:]
        if not given:
            return PlainTextResponse("Must provide an API key or an Authorization bearer token", 401)
        if given == self.read_only_api_key and given != self.api_key:
            if request.method not in ("GET", "HEAD"):
                return PlainTextResponse("Forbidden: write access denied for read-only key", 403)
            return None
        if given != self.api_key:
            return PlainTextResponse("Invalid API key or JWT", 401)
        return None

    async def _handle(self, request: Request) -> Response:
        started = time.perf_counter()
        path = request.url.path
        with self.cluster.lock:
            self.requests.append((request.method, path))
        denied = self._denied(request)
        if denied is not None:
            return denied
        found = qdrant_contract.match(request.method, path)
        if found is None:
            self._violation(f"{request.method} {path} is not an operation of Qdrant's API")
            return PlainTextResponse("Not found", 404)
        operation, path_params = found
        unknown = set(request.query_params) - operation.query
        if unknown:
            self._violation(f"{operation.name}: query parameters Qdrant does not take: {sorted(unknown)}")
        body = b""
        if operation.body is not None:
            body = await request.body()
            problems = qdrant_contract.check_body(operation, body)
            if problems:
                for problem in problems:
                    self._violation(problem)
                return self._answer(
                    operation, started, Refused(400, f"Format error in JSON body: {problems}")
                )
        handler = getattr(self, f"op_{operation.name}", None)
        if handler is None:
            self._violation(
                f"the fake does not implement {operation.name} ({operation.method} {operation.path})"
            )
            return PlainTextResponse("Not implemented by the fake", 501)
        self.cluster.tick()
        try:
            result = await handler(request, path_params, json.loads(body) if body else None)
        except Refused as refused:
            return self._answer(operation, started, refused)
        if isinstance(result, Response):
            return result
        return self._answer(operation, started, result)

    def _answer(self, operation: qdrant_contract.Operation, started: float, result: Any) -> Response:
        elapsed = time.perf_counter() - started
        if isinstance(result, Refused):
            status, content = result.status, {"status": {"error": str(result)}, "time": elapsed}
        else:
            status, content = 200, {"result": result, "status": "ok", "time": elapsed}
        if operation.answer == "VersionInfo":
            content = result
        for problem in qdrant_contract.check_answer(operation, status, content):
            self._violation(problem)
        return JSONResponse(content, status)

    # -- service and cluster ----------------------------------------------------------------------

    async def op_root(self, request: Request, params: dict[str, str], body: Any) -> Any:
        return {"title": "qdrant - vector search engine", "version": self.version, "commit": "0" * 40}

    async def op_readyz(self, request: Request, params: dict[str, str], body: Any) -> Response:
        ready = self.ready and (self.joined or not self.cluster.distributed)
        if ready:
            return PlainTextResponse("all shards are ready")
        return PlainTextResponse("some shards are not ready", 503)

    async def op_cluster_status(self, request: Request, params: dict[str, str], body: Any) -> Any:
        if not self.cluster.distributed:
            return {"status": "disabled"}
        joined = self.cluster.joined()
        leader = joined[0].peer_id if joined else self.peer_id
        return {
            "status": "enabled",
            "peer_id": self.peer_id,
            "peers": {str(p.peer_id): {"uri": f"http://127.0.0.1:{p.port + 2}/"} for p in joined},
            "raft_info": {
                "term": 1,
                "commit": len(self.cluster.collections) + len(joined),
                "pending_operations": 0,
                "leader": leader,
                "role": "Leader" if leader == self.peer_id else "Follower",
                "is_voter": True,
            },
            "consensus_thread_status": {
                "consensus_thread_status": "working",
                "last_update": datetime.datetime.now(datetime.UTC).isoformat(),
            },
            "message_send_failures": {},
        }

    # -- collections ------------------------------------------------------------------------------

    def _collection(self, name: str) -> ClusterCollection:
        found = self.cluster.collections.get(name)
        if found is None:
            raise Refused(404, f"Not found: Collection `{name}` doesn't exist!")
        return found

    async def op_get_collections(self, request: Request, params: dict[str, str], body: Any) -> Any:
        with self.cluster.lock:
            return {"collections": [{"name": n} for n in sorted(self.cluster.collections)]}

    async def op_collection_exists(self, request: Request, params: dict[str, str], body: Any) -> Any:
        with self.cluster.lock:
            return {"exists": params["collection_name"] in self.cluster.collections}

    async def op_get_collection(self, request: Request, params: dict[str, str], body: Any) -> Any:
        name = params["collection_name"]
        with self.cluster.lock:
            found = self._collection(name)
            count = len(self.cluster.points(name) or {})
            return {
                "status": "green",
                "optimizer_status": "ok",
                "indexed_vectors_count": 0,
                "points_count": count,
                "segments_count": 2 * len(found.replicas),
                "config": {
                    "params": copy.deepcopy(found.params),
                    "hnsw_config": {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000},
                    "optimizer_config": {
                        "deleted_threshold": 0.2,
                        "vacuum_min_vector_number": 1000,
                        "default_segment_number": 0,
                        "flush_interval_sec": 5,
                    },
                    "wal_config": {"wal_capacity_mb": 32, "wal_segments_ahead": 0},
                },
                "payload_schema": {
                    field: {
                        "data_type": schema if isinstance(schema, str) else schema["type"],
                        "points": count,
                    }
                    for field, schema in found.payload_schema.items()
                },
            }

    async def op_create_collection(self, request: Request, params: dict[str, str], body: Any) -> Any:
        name = params["collection_name"]
        with self.cluster.lock:
            if name in self.cluster.collections:
                raise Refused(409, f"Wrong input: Collection `{name}` already exists!")
            settings = {k: v for k, v in body.items() if v is not None}
            created = {
                "vectors": settings["vectors"],
                # Qdrant's default shard number in a cluster is the number of peers at that moment.
                "shard_number": settings.get("shard_number")
                or (len(self.cluster.joined()) if self.cluster.distributed else 1),
                "replication_factor": settings.get("replication_factor", 1),
                "write_consistency_factor": settings.get("write_consistency_factor", 1),
                "on_disk_payload": settings.get("on_disk_payload", True),
            }
            if settings.get("sparse_vectors"):
                created["sparse_vectors"] = settings["sparse_vectors"]
            self.cluster._create(name, created, {})
            return True

    async def op_update_collection(self, request: Request, params: dict[str, str], body: Any) -> Any:
        with self.cluster.lock:
            found = self._collection(params["collection_name"])
            factor = (body.get("params") or {}).get("replication_factor")
            if factor:
                found.params["replication_factor"] = factor
            unnamed = "size" in found.params["vectors"]
            for vector, diff in (body.get("vectors") or {}).items():
                if vector != "" or not unnamed:
                    raise Refused(400, f"Wrong input: Not existing vector name error: {vector}")
                if diff.get("on_disk") is not None:
                    found.params["vectors"]["on_disk"] = diff["on_disk"]
            return True

    async def op_delete_collection(self, request: Request, params: dict[str, str], body: Any) -> Any:
        name = params["collection_name"]
        with self.cluster.lock:
            existed = name in self.cluster.collections
            self.cluster.drop_collection(name)
            return existed

    async def op_create_field_index(self, request: Request, params: dict[str, str], body: Any) -> Any:
        with self.cluster.lock:
            found = self._collection(params["collection_name"])
            found.payload_schema[body["field_name"]] = body["field_schema"]
            return {"operation_id": len(found.payload_schema), "status": "completed"}

    async def op_count_points(self, request: Request, params: dict[str, str], body: Any) -> Any:
        name = params["collection_name"]
        with self.cluster.lock:
            found = self._collection(name)
            lonely = [s for s, peers in found.replicas.items() if ACTIVE not in peers.values()]
            if lonely:
                raise Refused(
                    500, f"Service internal error: No active replica for shard {lonely[0]} of {name}"
                )
            wanted = (body or {}).get("filter")
            points = self.cluster.points(name) or {}
            return {"count": sum(1 for p in points.values() if matches(wanted, p.get("payload") or {}))}

    # -- points (by filter: what erasures use) ----------------------------------------------------

    def _selected(self, name: str, selector: dict[str, Any]) -> list[str]:
        points = self.cluster.points(name) or {}
        if "points" in selector:
            return [str(i) for i in selector["points"] if str(i) in points]
        return [i for i, p in points.items() if matches(selector.get("filter"), p.get("payload") or {})]

    async def op_delete_points(self, request: Request, params: dict[str, str], body: Any) -> Any:
        name = params["collection_name"]
        with self.cluster.lock:
            self._collection(name)
            self.cluster.delete_points(name, self._selected(name, body))
            return {"operation_id": 1, "status": "completed"}

    async def op_scroll_points(self, request: Request, params: dict[str, str], body: Any) -> Any:
        name = params["collection_name"]
        with self.cluster.lock:
            self._collection(name)
            chosen = sorted(self._selected(name, {"filter": body.get("filter")}))
            start = chosen.index(str(body["offset"])) if body.get("offset") is not None else 0
            limit = int(body.get("limit") or 10)
            page = chosen[start : start + limit]
            points = self.cluster.points(name) or {}
            records = [_record(i, points[i], body.get("with_payload")) for i in page]
            following = chosen[start + limit] if start + limit < len(chosen) else None
            return {"points": records, "next_page_offset": following}

    async def op_get_points(self, request: Request, params: dict[str, str], body: Any) -> Any:
        name = params["collection_name"]
        with self.cluster.lock:
            self._collection(name)
            points = self.cluster.points(name) or {}
            found = self._selected(name, {"points": body["ids"]})
            return [_record(i, points[i], body.get("with_payload")) for i in found]

    async def op_set_payload(self, request: Request, params: dict[str, str], body: Any) -> Any:
        name = params["collection_name"]
        with self.cluster.lock:
            self._collection(name)
            for point_id in self._selected(name, body):
                point = (self.cluster.points(name) or {})[point_id]
                updated = {**point, "payload": {**(point.get("payload") or {}), **body["payload"]}}
                self.cluster.upsert(name, {point_id: updated})
            return {"operation_id": 1, "status": "completed"}

    async def op_collection_cluster_info(self, request: Request, params: dict[str, str], body: Any) -> Any:
        name = params["collection_name"]
        with self.cluster.lock:
            found = self._collection(name)
            local, remote = [], []
            for shard, peers in sorted(found.replicas.items()):
                for peer_id, state in sorted(peers.items()):
                    if peer_id == self.peer_id:
                        count = len(self.local.get(name, {}).get(shard, {}))
                        local.append({"shard_id": shard, "points_count": count, "state": state})
                    else:
                        remote.append({"shard_id": shard, "peer_id": peer_id, "state": state})
            return {
                "peer_id": self.peer_id,
                "shard_count": found.params["shard_number"],
                "local_shards": local,
                "remote_shards": remote,
                "shard_transfers": [
                    {
                        "shard_id": t.shard_id,
                        "from": t.source,
                        "to": t.target,
                        "sync": t.sync,
                        "method": "stream_records",
                    }
                    for t in found.transfers
                ],
            }

    async def op_update_collection_cluster(self, request: Request, params: dict[str, str], body: Any) -> Any:
        name = params["collection_name"]
        with self.cluster.lock:
            found = self._collection(name)
            if "replicate_shard" in body:
                op = body["replicate_shard"]
                shard, source, target = op["shard_id"], op["from_peer_id"], op["to_peer_id"]
                peers = found.replicas.get(shard)
                if peers is None:
                    raise Refused(404, f"Not found: shard {shard} of {name}")
                if peers.get(source) != ACTIVE:
                    raise Refused(400, f"Bad request: Shard {shard} is not active on peer {source}")
                if target in peers:
                    raise Refused(400, f"Bad request: Shard {shard} is already present on peer {target}")
                if target not in [p.peer_id for p in self.cluster.joined()]:
                    raise Refused(400, f"Bad request: Peer {target} does not exist")
                peers[target] = PARTIAL
                self.cluster.peer(target).local[name][shard] = {}
                found.transfers.append(Transfer(shard, source, target, True, self.cluster.transfer_ticks))
                return True
            if "drop_replica" in body:
                op = body["drop_replica"]
                shard, peer_id = op["shard_id"], op["peer_id"]
                peers = found.replicas.get(shard, {})
                if peer_id not in peers:
                    raise Refused(400, f"Bad request: Shard {shard} is not present on peer {peer_id}")
                if [p for p, s in peers.items() if s == ACTIVE] == [peer_id]:
                    raise Refused(400, f"Bad request: Shard {shard} must have at least one active replica")
                del peers[peer_id]
                self.cluster.peer(peer_id).local[name].pop(shard, None)
                self.cluster._cancel_transfers(found, shard, peer_id)
                return True
            raise Refused(501, f"the fake does not model {sorted(body)}")

    # -- snapshots --------------------------------------------------------------------------------

    def _snapshot_tar(self, name: str) -> bytes:
        found = self._collection(name)
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as tar:
            members: list[tuple[str, Any]] = [
                ("version.info", self.version),
                ("config.json", {"params": found.params}),
                ("payload_index.json", {"schema": found.payload_schema}),
            ]
            for shard, peers in sorted(found.replicas.items()):
                members.append(
                    (f"shards/{shard}/replica_state.json", {"peers": {str(p): s for p, s in peers.items()}})
                )
                if self.peer_id in peers:  # a remote shard has no data in this node's snapshot
                    members.append((f"shards/{shard}/points.json", self.local[name].get(shard, {})))
            for member, value in members:
                data = (
                    value.encode() if isinstance(value, str) else json.dumps(value, sort_keys=True).encode()
                )
                info = tarfile.TarInfo(member)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return out.getvalue()

    def _description(self, path: Path) -> dict[str, Any]:
        checksum = path.with_name(path.name + ".checksum")
        stat = path.stat()
        return {
            "name": path.name,
            "creation_time": datetime.datetime.fromtimestamp(stat.st_mtime, datetime.UTC)
            .replace(tzinfo=None)
            .isoformat(timespec="seconds"),
            "size": stat.st_size,
            "checksum": checksum.read_text() if checksum.exists() else None,
        }

    def take_snapshot(self, name: str) -> dict[str, Any]:
        """What `POST /collections/{name}/snapshots` does; callable by tests as another client."""
        with self.cluster.lock:
            data = self._snapshot_tar(name)
            snapshot = f"{name}-{self.peer_id}-{self.cluster.clock():%Y-%m-%d-%H-%M-%S}.snapshot"
            folder = self.snapshots_dir / name
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / snapshot
            # The same name in the same second: Qdrant replaces the file (and its checksum).
            path.with_name(snapshot + ".checksum").write_text(hashlib.sha256(data).hexdigest())
            path.write_bytes(data)
            return self._description(path)

    async def op_create_snapshot(self, request: Request, params: dict[str, str], body: Any) -> Any:
        name = params["collection_name"]
        description = self.take_snapshot(name)
        if self.after_snapshot is not None:
            self.after_snapshot(name, description["name"])
        return description

    async def op_list_snapshots(self, request: Request, params: dict[str, str], body: Any) -> Any:
        name = params["collection_name"]
        with self.cluster.lock:
            self._collection(name)
            folder = self.snapshots_dir / name
            files = sorted(folder.glob("*.snapshot")) if folder.is_dir() else []
            return [self._description(p) for p in files]

    def _snapshot_path(self, params: dict[str, str]) -> Path:
        name, snapshot = params["collection_name"], params["snapshot_name"]
        self._collection(name)
        path = self.snapshots_dir / name / Path(snapshot).name
        if not path.is_file():
            raise Refused(404, f"Not found: Snapshot file `{snapshot}` does not exist")
        return path

    async def op_get_snapshot(self, request: Request, params: dict[str, str], body: Any) -> Response:
        with self.cluster.lock:
            path = self._snapshot_path(params)
            corrupt = self.corrupt_downloads
            size = path.stat().st_size

        def chunks() -> Iterator[bytes]:
            with path.open("rb") as stream:
                sent = 0
                while chunk := stream.read(CHUNK):
                    sent += len(chunk)
                    if corrupt and sent == size:
                        chunk = chunk[:-1] + bytes([chunk[-1] ^ 0xFF])
                    yield chunk

        return StreamingResponse(
            chunks(), media_type="application/octet-stream", headers={"content-length": str(size)}
        )

    async def op_delete_snapshot(self, request: Request, params: dict[str, str], body: Any) -> Any:
        with self.cluster.lock:
            path = self._snapshot_path(params)
            path.unlink()
            path.with_name(path.name + ".checksum").unlink(missing_ok=True)
            return True

    async def op_recover_from_uploaded_snapshot(
        self, request: Request, params: dict[str, str], body: Any
    ) -> Any:
        name = params["collection_name"]
        priority = request.query_params.get("priority", "replica")
        checksum = request.query_params.get("checksum")
        upload = await _receive_upload(request, self.snapshots_dir / "tmp" / "upload")
        with self.cluster.lock:
            self.cluster.recoveries.append(
                {
                    "peer": self.ordinal,
                    "collection": name,
                    "priority": request.query_params.get("priority"),
                    "checksum": checksum,
                    "filename": upload.filename,
                    "size": upload.size,
                }
            )
        try:
            if priority not in PRIORITIES:
                raise Refused(400, f"Deserialize error in query parameters: unknown variant `{priority}`")
            if checksum is not None and not SHA256.match(checksum):
                raise Refused(422, "Validation error in query parameters: checksum: invalid_sha256_hash")
            if upload.path is None:
                raise Refused(400, "Bad request: multipart field `snapshot` is missing")
            actual = upload.hash.hexdigest()
            if checksum is not None and checksum.strip().lower() != actual:
                raise Refused(400, f"Checksum mismatch: expected {actual}, actual {checksum}")
            # Kept in the collection's snapshots folder under the upload's file name, as Qdrant does.
            folder = self.snapshots_dir / name
            folder.mkdir(parents=True, exist_ok=True)
            kept = folder / Path(upload.filename or str(uuid.uuid4())).name
            os.replace(upload.path, kept)
            upload.path = None
        finally:
            if upload.path is not None:
                upload.path.unlink(missing_ok=True)
        # Reading and recovering happen in a worker thread: a large snapshot must not stop the server.
        await asyncio.to_thread(self._recover, name, kept, priority)
        return True

    def _recover(self, name: str, snapshot: Path, priority: str) -> None:
        """Qdrant's `_do_recover_from_snapshot`, for this peer."""
        params, schema, data = _read_snapshot(snapshot)
        with self.cluster.lock:
            found = self.cluster.collections.get(name)
            if found is None:
                found = self.cluster._create(name, copy.deepcopy(params), schema)
            if params["vectors"] != found.params["vectors"]:
                raise Refused(
                    400,
                    "Bad request: Snapshot is not compatible with existing collection: Collection vectors: "
                    f"{found.params['vectors']} Snapshot Vectors: {params['vectors']}",
                )
            if params["shard_number"] != found.params["shard_number"]:
                raise Refused(
                    400,
                    "Bad request: Snapshot is not compatible with existing collection: "
                    f"Collection shard number: {found.params['shard_number']} "
                    f"Snapshot shard number: {params['shard_number']}",
                )
            before = copy.deepcopy(found.replicas)
            me = self.peer_id
            for peers in found.replicas.values():
                if me in peers:
                    peers[me] = PARTIAL
            for shard, peers_before in sorted(before.items()):
                if shard not in data:
                    continue  # no data for this shard in the snapshot: skipped, left as it is
                self.local.setdefault(name, {})[shard] = copy.deepcopy(data[shard])
                self.cluster._cancel_transfers(found, shard, me)
                peers = found.replicas[shard]
                others = [p for p, state in peers_before.items() if p != me and state == ACTIVE]
                if not others or priority == "no_sync":
                    peers[me] = ACTIVE
                elif priority == "snapshot":
                    peers[me] = ACTIVE
                    keep = found.params["replication_factor"] - 1
                    remove = max(0, len(others) - keep)
                    for other in others:
                        if remove > 0:
                            remove -= 1
                            del peers[other]
                            self.cluster.peer(other).local[name].pop(shard, None)
                            self.cluster._cancel_transfers(found, shard, other)
                        else:
                            peers[other] = DEAD
                else:  # replica: the other replica's data wins, transferred here
                    peers[me] = PARTIAL
                    found.transfers.append(Transfer(shard, others[0], me, True, self.cluster.transfer_ticks))


@dataclass
class _Upload:
    """A multipart upload written to a file as it arrives (Qdrant's actix `TempFile`)."""

    directory: Path
    filename: str | None = None
    path: Path | None = None
    hash: Any = field(default_factory=hashlib.sha256)
    size: int = 0


async def _receive_upload(request: Request, directory: Path) -> _Upload:
    directory.mkdir(parents=True, exist_ok=True)
    upload = _Upload(directory)
    _, options = parse_options_header(request.headers.get("content-type", ""))
    headers: dict[bytes, bytes] = {}
    pending = {"field": b"", "value": b""}
    state: dict[str, Any] = {"file": None}

    def on_header_field(data: bytes, start: int, end: int) -> None:
        pending["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        pending["value"] += data[start:end]

    def on_header_end() -> None:
        headers[pending["field"].lower()] = pending["value"]
        pending["field"] = pending["value"] = b""

    def on_headers_finished() -> None:
        _, disposition = parse_options_header(headers.get(b"content-disposition", b""))
        if disposition.get(b"name") == b"snapshot" and upload.path is None:
            filename = disposition.get(b"filename")
            upload.filename = filename.decode() if filename else None
            upload.path = directory / f"upload-{uuid.uuid4().hex}"
            state["file"] = upload.path.open("wb")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["file"] is not None:
            piece = data[start:end]
            state["file"].write(piece)
            upload.hash.update(piece)
            upload.size += len(piece)

    def on_part_end() -> None:
        if state["file"] is not None:
            state["file"].close()
            state["file"] = None
        headers.clear()

    parser = MultipartParser(
        options.get(b"boundary", b""),
        {
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    finally:
        if state["file"] is not None:
            state["file"].close()
    return upload


def _read_snapshot(path: Path) -> tuple[dict[str, Any], dict[str, Any], dict[int, Points]]:
    """Config, payload index schema and the shards with data of a snapshot file."""
    try:
        with tarfile.open(path, mode="r") as tar:
            params: dict[str, Any] | None = None
            schema: dict[str, Any] = {}
            data: dict[int, Points] = {}
            for member in tar:
                if member.name == "config.json":
                    params = _json(tar, member)["params"]
                elif member.name == "payload_index.json":
                    schema = _json(tar, member)["schema"]
                elif member.name.startswith("shards/") and member.name.endswith("/points.json"):
                    data[int(member.name.split("/")[1])] = _json(tar, member)
    except (tarfile.TarError, ValueError, KeyError) as error:
        raise Refused(400, f"Bad request: invalid snapshot: {error}") from error
    if params is None:
        raise Refused(400, "Bad request: invalid snapshot: no collection config")
    return params, schema, data


def _json(tar: tarfile.TarFile, member: tarfile.TarInfo) -> Any:
    stream = tar.extractfile(member)
    if stream is None:
        raise ValueError(f"{member.name} is not a file")
    return json.loads(stream.read())


def read_snapshot(data: bytes) -> tuple[dict[str, Any], Points]:
    """The config and every point in a snapshot's bytes (for tests)."""
    with tempfile.NamedTemporaryFile() as file:
        file.write(data)
        file.flush()
        params, _, shards = _read_snapshot(Path(file.name))
    points: Points = {}
    for shard in shards.values():
        points.update(shard)
    return params, points


def matches(query: dict[str, Any] | None, payload: dict[str, Any]) -> bool:
    """Whether a payload meets a Qdrant filter: `must`, `should` and `must_not` of field conditions
    (`match` by value or any of values, `is_empty`) and of nested filters."""
    if not query:
        return True

    def listed(value: Any) -> list[Any]:
        return [] if value is None else value if isinstance(value, list) else [value]

    must, should, must_not = (listed(query.get(k)) for k in ("must", "should", "must_not"))
    return (
        all(_meets(c, payload) for c in must)
        and (not should or any(_meets(c, payload) for c in should))
        and not any(_meets(c, payload) for c in must_not)
    )


def _meets(condition: dict[str, Any], payload: dict[str, Any]) -> bool:
    if any(k in condition for k in ("must", "should", "must_not")):
        return matches(condition, payload)
    if "is_empty" in condition:
        return payload.get(condition["is_empty"]["key"]) in (None, [], "")
    value, wanted = payload.get(condition["key"]), condition.get("match") or {}
    if "value" in wanted:
        return bool(value == wanted["value"])
    if "any" in wanted:
        return value in wanted["any"]
    raise Refused(400, f"the fake does not model the condition {condition}")


def _record(point_id: str, point: dict[str, Any], with_payload: Any) -> dict[str, Any]:
    payload = point.get("payload") or {}
    if isinstance(with_payload, list):
        payload = {k: v for k, v in payload.items() if k in with_payload}
    elif not with_payload:
        payload = {}
    return {"id": point_id, "payload": payload}


@contextlib.contextmanager
def running_cluster(size: int, api_key: str | None = None, **settings: Any) -> Iterator[FakeCluster]:
    started = FakeCluster(size, api_key=api_key, **settings).start()
    try:
        yield started
    finally:
        started.stop()
