"""Qdrant's collection snapshot API over HTTP, for one node at a time.

Plain HTTP rather than qdrant-client: the backup streams snapshot files (download and multipart upload)
without holding them in memory, and talks to each peer of a cluster separately.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import quote

import httpx

# Creating or recovering a snapshot of a large collection takes long; connecting must not.
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=3600.0, write=3600.0, pool=30.0)
CHUNK_SIZE = 1024 * 1024


class QdrantError(Exception):
    """A Qdrant node refused or failed a call; the message names the node and the reason."""


class NotFound(QdrantError):
    """The collection or snapshot does not exist."""


@dataclass(frozen=True)
class SnapshotDescription:
    """What Qdrant reports about a snapshot (`SnapshotDescription` in its OpenAPI)."""

    name: str
    size: int
    creation_time: str | None = None
    checksum: str | None = None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> SnapshotDescription:
        return cls(
            name=str(data["name"]),
            size=int(data.get("size") or 0),
            creation_time=data.get("creation_time"),
            checksum=data.get("checksum"),
        )


def _path(*parts: str) -> str:
    return "/" + "/".join(quote(p, safe="") for p in parts)


class QdrantNode:
    """One Qdrant node (a peer in distributed mode), reached at its own URL."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        headers = {"api-key": api_key} if api_key else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> QdrantNode:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------------

    def _error(self, response: httpx.Response, doing: str) -> QdrantError:
        if response.status_code in (401, 403):
            return QdrantError(
                f"Qdrant at {self.url} refused {doing}: HTTP {response.status_code} "
                "(wrong or missing API key, or a read-only key)"
            )
        detail = response.text.strip()
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            detail = str(response.json()["status"]["error"])
        kind = NotFound if response.status_code == 404 else QdrantError
        return kind(f"Qdrant at {self.url} failed {doing}: HTTP {response.status_code}: {detail[:500]}")

    def _call(self, method: str, path: str, doing: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise QdrantError(f"Qdrant at {self.url} is unreachable ({doing}): {error}") from error
        if response.is_error:
            raise self._error(response, doing)
        try:
            body = response.json()
        except ValueError as error:
            raise QdrantError(f"Qdrant at {self.url} sent a non-JSON answer to {doing}") from error
        return body.get("result") if isinstance(body, dict) and "result" in body else body

    # -- node and collections -------------------------------------------------------------------

    def version(self) -> str | None:
        """The node's Qdrant version (`GET /`, which needs no API key)."""
        info = self._call("GET", "/", "reading its version")
        return str(info["version"]) if isinstance(info, dict) and info.get("version") else None

    def collections(self) -> list[str]:
        result = self._call("GET", "/collections", "listing collections")
        return sorted(c["name"] for c in result["collections"])

    def collection_exists(self, collection: str) -> bool:
        try:
            self._call("GET", _path("collections", collection), f"reading collection {collection}")
        except NotFound:
            return False
        return True

    def local_points(self, collection: str) -> int | None:
        """Points in the shards this node holds; `None` when the collection does not exist."""
        try:
            info = self._call(
                "GET", _path("collections", collection, "cluster"), f"reading collection {collection}"
            )
        except NotFound:
            return None
        return sum(int(shard.get("points_count") or 0) for shard in info.get("local_shards") or [])

    def wait_until_up(self, timeout: float, interval: float = 1.0) -> None:
        """Wait for the node to answer (it may be starting beside a restore job)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.version()
                return
            except QdrantError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(interval)

    def wait_for_collection(self, collection: str, timeout: float, interval: float = 0.5) -> None:
        deadline = time.monotonic() + timeout
        while not self.collection_exists(collection):
            if time.monotonic() > deadline:
                raise QdrantError(f"collection {collection} did not appear on {self.url} within {timeout:g}s")
            time.sleep(interval)

    # -- snapshots ------------------------------------------------------------------------------

    def create_snapshot(self, collection: str) -> SnapshotDescription:
        result = self._call(
            "POST",
            _path("collections", collection, "snapshots"),
            f"creating a snapshot of {collection}",
            params={"wait": "true"},
        )
        return SnapshotDescription.from_api(result)

    def list_snapshots(self, collection: str) -> list[SnapshotDescription]:
        result = self._call(
            "GET", _path("collections", collection, "snapshots"), f"listing snapshots of {collection}"
        )
        return [SnapshotDescription.from_api(s) for s in result]

    @contextlib.contextmanager
    def download_snapshot(self, collection: str, name: str) -> Iterator[Iterator[bytes]]:
        """The snapshot file's bytes, streamed in chunks."""
        doing = f"downloading snapshot {name} of {collection}"
        try:
            with self._http.stream("GET", _path("collections", collection, "snapshots", name)) as response:
                if response.is_error:
                    response.read()
                    raise self._error(response, doing)
                yield response.iter_bytes(CHUNK_SIZE)
        except httpx.HTTPError as error:
            raise QdrantError(f"Qdrant at {self.url} is unreachable ({doing}): {error}") from error

    def delete_snapshot(self, collection: str, name: str) -> None:
        self._call(
            "DELETE",
            _path("collections", collection, "snapshots", name),
            f"deleting snapshot {name} of {collection}",
            params={"wait": "true"},
        )

    def recover_snapshot(
        self, collection: str, name: str, stream: BinaryIO, checksum: str | None, priority: str = "snapshot"
    ) -> None:
        """Recover `collection` on this node from an uploaded snapshot file (multipart, streamed).

        With `priority=snapshot` the snapshot's data replaces whatever the node holds; Qdrant checks
        `checksum` before it touches the collection.
        """
        params = {"priority": priority, "wait": "true"}
        if checksum:
            params["checksum"] = checksum
        self._call(
            "POST",
            _path("collections", collection, "snapshots", "upload"),
            f"recovering {collection} from snapshot {name}",
            params=params,
            files={"snapshot": (name, stream, "application/octet-stream")},
        )
