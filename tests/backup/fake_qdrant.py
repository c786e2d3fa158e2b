"""A small, faithful fake of one Qdrant node's HTTP API for collections and collection snapshots.

Shapes follow Qdrant's OpenAPI: answers in the `{result, status, time}` envelope, errors as
`{status: {error}, time}`, `SnapshotDescription` (name, creation_time, size, checksum), snapshot names
`<collection>-<peer id>-<YYYY-MM-DD-HH-MM-SS>.snapshot`, the api-key check (`api-key` header or bearer
token; 401 when missing or wrong, 403 for writes with the read-only key; `/` and the probes are open).
A snapshot file is a real tar archive of the collection's config and points, so a recovered collection
holds exactly the points that were backed up.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import random
import socket
import tarfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

VERSION = "1.15.4"
OPEN_PATHS = {"/", "/healthz", "/livez", "/readyz"}


@dataclass
class Collection:
    config: dict[str, Any]
    points: dict[str, dict[str, Any]] = field(default_factory=dict)


def snapshot_bytes(collection: Collection) -> bytes:
    """A tar holding the collection's config and points, as a real snapshot holds its segments."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, value in (("config.json", collection.config), ("points.json", collection.points)):
            data = json.dumps(value, sort_keys=True).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def read_snapshot(data: bytes) -> Collection:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        config = tar.extractfile("config.json")
        points = tar.extractfile("points.json")
        if config is None or points is None:
            raise ValueError("not a collection snapshot")
        return Collection(json.loads(config.read()), json.loads(points.read()))


class FakeQdrant:
    """One Qdrant node on 127.0.0.1, served by uvicorn from a thread."""

    def __init__(self, api_key: str | None = None, read_only_api_key: str | None = None) -> None:
        self.api_key = api_key
        self.read_only_api_key = read_only_api_key
        self.peer_id = random.randrange(10**15, 10**16)
        self.collections: dict[str, Collection] = {}
        self.snapshots: dict[str, dict[str, bytes]] = {}
        self.corrupt_downloads = False
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- test controls ----------------------------------------------------------------------------

    def create_collection(self, name: str, points: dict[str, dict[str, Any]] | None = None) -> None:
        with self.lock:
            self.collections[name] = Collection({"params": {"vectors": {"size": 4, "distance": "Cosine"}}})
            self.collections[name].points.update(points or {})

    def points(self, name: str) -> dict[str, dict[str, Any]] | None:
        with self.lock:
            found = self.collections.get(name)
            return None if found is None else dict(found.points)

    def drop_collection(self, name: str) -> None:
        with self.lock:
            self.collections.pop(name, None)

    def stored_snapshots(self, name: str) -> list[str]:
        with self.lock:
            return sorted(self.snapshots.get(name, {}))

    # -- serving ----------------------------------------------------------------------------------

    def start(self) -> FakeQdrant:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        config = uvicorn.Config(
            self.app(), host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
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

    def app(self) -> Starlette:
        routes = [
            Route("/", self.root, methods=["GET"]),
            Route("/collections", self.list_collections, methods=["GET"]),
            Route("/collections/{name}", self.get_collection, methods=["GET"]),
            Route("/collections/{name}", self.delete_collection, methods=["DELETE"]),
            Route("/collections/{name}/exists", self.collection_exists, methods=["GET"]),
            Route("/collections/{name}/cluster", self.collection_cluster, methods=["GET"]),
            Route("/collections/{name}/snapshots", self.list_snapshots, methods=["GET"]),
            Route("/collections/{name}/snapshots", self.create_snapshot, methods=["POST"]),
            Route("/collections/{name}/snapshots/upload", self.upload_snapshot, methods=["POST"]),
            Route("/collections/{name}/snapshots/{snapshot}", self.get_snapshot, methods=["GET"]),
            Route("/collections/{name}/snapshots/{snapshot}", self.delete_snapshot, methods=["DELETE"]),
        ]

        async def authenticate(request: Request, call_next: Any) -> Response:
            with self.lock:
                self.requests.append((request.method, request.url.path))
            if self.api_key and request.url.path not in OPEN_PATHS:
                given = request.headers.get("api-key")
                bearer = request.headers.get("authorization", "")
                if not given and bearer.lower().startswith("bearer "):
                    given = bearer[7:]
                if not given:
                    return PlainTextResponse("Must provide an API key or an Authorization bearer token", 401)
                if given == self.read_only_api_key and given != self.api_key:
                    if request.method not in ("GET", "HEAD"):
                        return PlainTextResponse("Forbidden: write access denied for read-only key", 403)
                elif given != self.api_key:
                    return PlainTextResponse("Invalid API key or JWT", 401)
            response: Response = await call_next(request)
            return response

        return Starlette(routes=routes, middleware=[Middleware(BaseHTTPMiddleware, dispatch=authenticate)])

    @staticmethod
    def ok(result: Any, started: float) -> JSONResponse:
        return JSONResponse({"result": result, "status": "ok", "time": time.perf_counter() - started})

    @staticmethod
    def error(status: int, message: str, started: float) -> JSONResponse:
        return JSONResponse({"status": {"error": message}, "time": time.perf_counter() - started}, status)

    def _missing(self, name: str, started: float) -> JSONResponse:
        return self.error(404, f"Not found: Collection `{name}` doesn't exist!", started)

    # -- handlers ---------------------------------------------------------------------------------

    async def root(self, request: Request) -> Response:
        return JSONResponse(
            {"title": "qdrant - vector search engine", "version": VERSION, "commit": "0" * 40}
        )

    async def list_collections(self, request: Request) -> Response:
        started = time.perf_counter()
        with self.lock:
            names = sorted(self.collections)
        return self.ok({"collections": [{"name": n} for n in names]}, started)

    async def get_collection(self, request: Request) -> Response:
        started = time.perf_counter()
        name = request.path_params["name"]
        with self.lock:
            found = self.collections.get(name)
            if found is None:
                return self._missing(name, started)
            count = len(found.points)
            config = found.config
        return self.ok(
            {
                "status": "green",
                "optimizer_status": "ok",
                "segments_count": 1,
                "points_count": count,
                "indexed_vectors_count": 0,
                "config": config,
                "payload_schema": {},
            },
            started,
        )

    async def delete_collection(self, request: Request) -> Response:
        started = time.perf_counter()
        with self.lock:
            existed = self.collections.pop(request.path_params["name"], None) is not None
        return self.ok(existed, started)

    async def collection_exists(self, request: Request) -> Response:
        started = time.perf_counter()
        with self.lock:
            exists = request.path_params["name"] in self.collections
        return self.ok({"exists": exists}, started)

    async def collection_cluster(self, request: Request) -> Response:
        started = time.perf_counter()
        name = request.path_params["name"]
        with self.lock:
            found = self.collections.get(name)
            if found is None:
                return self._missing(name, started)
            count = len(found.points)
        return self.ok(
            {
                "peer_id": self.peer_id,
                "shard_count": 1,
                "local_shards": [{"shard_id": 0, "points_count": count, "state": "Active"}],
                "remote_shards": [],
                "shard_transfers": [],
            },
            started,
        )

    def _description(self, name: str, data: bytes, created: str) -> dict[str, Any]:
        return {
            "name": name,
            "creation_time": created,
            "size": len(data),
            "checksum": hashlib.sha256(data).hexdigest(),
        }

    async def create_snapshot(self, request: Request) -> Response:
        started = time.perf_counter()
        name = request.path_params["name"]
        with self.lock:
            found = self.collections.get(name)
            if found is None:
                return self._missing(name, started)
            data = snapshot_bytes(found)
            stored = self.snapshots.setdefault(name, {})
            moment = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
            snapshot = f"{name}-{self.peer_id}-{moment:%Y-%m-%d-%H-%M-%S}.snapshot"
            while snapshot in stored:  # one per second at most, as Qdrant names them
                moment += datetime.timedelta(seconds=1)
                snapshot = f"{name}-{self.peer_id}-{moment:%Y-%m-%d-%H-%M-%S}.snapshot"
            stored[snapshot] = data
        return self.ok(self._description(snapshot, data, moment.strftime("%Y-%m-%dT%H:%M:%S")), started)

    async def list_snapshots(self, request: Request) -> Response:
        started = time.perf_counter()
        name = request.path_params["name"]
        with self.lock:
            if name not in self.collections:
                return self._missing(name, started)
            items = [self._description(s, d, "") for s, d in sorted(self.snapshots.get(name, {}).items())]
        return self.ok(items, started)

    async def get_snapshot(self, request: Request) -> Response:
        started = time.perf_counter()
        name, snapshot = request.path_params["name"], request.path_params["snapshot"]
        with self.lock:
            data = self.snapshots.get(name, {}).get(snapshot)
            corrupt = self.corrupt_downloads
        if data is None:
            return self.error(404, f"Not found: Snapshot file `{snapshot}` does not exist", started)
        if corrupt:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        return Response(data, media_type="application/octet-stream")

    async def delete_snapshot(self, request: Request) -> Response:
        started = time.perf_counter()
        name, snapshot = request.path_params["name"], request.path_params["snapshot"]
        with self.lock:
            if self.snapshots.get(name, {}).pop(snapshot, None) is None:
                return self.error(404, f"Not found: Snapshot file `{snapshot}` does not exist", started)
        return self.ok(True, started)

    async def upload_snapshot(self, request: Request) -> Response:
        started = time.perf_counter()
        name = request.path_params["name"]
        priority = request.query_params.get("priority", "replica")
        if priority not in ("no_sync", "snapshot", "replica"):
            return self.error(400, f"Bad request: unknown priority {priority}", started)
        form = await request.form()
        upload = form.get("snapshot")
        if upload is None or isinstance(upload, str):
            return self.error(400, "Bad request: missing snapshot file", started)
        data = await upload.read()
        expected = request.query_params.get("checksum")
        actual = hashlib.sha256(data).hexdigest()
        if expected and expected != actual:
            return self.error(
                400, f"Bad request: Snapshot checksum mismatch: expected {expected}, got {actual}", started
            )
        try:
            recovered = read_snapshot(data)
        except (tarfile.TarError, ValueError, KeyError) as error:
            return self.error(400, f"Bad request: invalid snapshot: {error}", started)
        with self.lock:
            self.collections[name] = recovered
        return self.ok(True, started)
