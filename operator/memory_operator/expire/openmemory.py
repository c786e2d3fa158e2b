"""Deleting through OpenMemory's REST API, for stores of the `openmemory` flavor.

OpenMemory keeps each memory's state in its SQL database beside the Qdrant point; deleting only the
point would leave the row active (and a user with no rows sees every Qdrant hit). So the ids a rule
matches are found by scrolling Qdrant with the rule's filter and deleted with
`DELETE /api/v1/memories/` (`{memory_ids, user_id}`), one request per user and batch. The points
are then deleted in Qdrant too, by id: recent OpenMemory versions already did that (a no-op then),
older ones only mark the row deleted and would leave the vector searchable.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence

import httpx
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from memory_operator.expire.purge import scroll

log = logging.getLogger(__name__)

DELETE_PATH = "/api/v1/memories/"
BATCH_SIZE = 100


class ServerError(Exception):
    """The memory server could not be reached or refused a delete."""


class OpenMemoryDeleter:
    """Deletes the memories a filter matches through OpenMemory's API, grouped per user."""

    def __init__(
        self, client: QdrantClient, collection: str, http: httpx.Client, batch_size: int = BATCH_SIZE
    ) -> None:
        self.client = client
        self.collection = collection
        self.http = http
        self.batch_size = batch_size

    def delete(self, query: qm.Filter) -> None:
        for user_id, ids in self.ids_by_user(query).items():
            if user_id is None:
                # OpenMemory always sets a user; a point without one has no row to keep consistent.
                log.warning("%d matched memories have no user_id: deleting them in Qdrant only", len(ids))
                self._delete_points(ids)
                continue
            for start in range(0, len(ids), self.batch_size):
                self._delete_batch(user_id, ids[start : start + self.batch_size])

    def ids_by_user(self, query: qm.Filter) -> dict[str | None, list[str]]:
        groups: dict[str | None, list[str]] = defaultdict(list)
        for record in scroll(self.client, self.collection, query, payload=["user_id"]):
            user = (record.payload or {}).get("user_id")
            groups[str(user) if user else None].append(str(record.id))
        return dict(groups)

    def _delete_batch(self, user_id: str, ids: Sequence[str]) -> None:
        try:
            response = self.http.request(
                "DELETE", DELETE_PATH, json={"memory_ids": list(ids), "user_id": user_id}
            )
        except httpx.HTTPError as error:
            raise ServerError(f"OpenMemory at {self.http.base_url} is unreachable: {error}") from error
        if response.status_code == 404:
            # One unknown id fails the whole request: find which, one at a time.
            if len(ids) > 1:
                for memory_id in ids:
                    self._delete_batch(user_id, [memory_id])
                return
            log.warning("OpenMemory has no row for memory %s: deleting it in Qdrant only", ids[0])
        elif response.is_error:
            raise ServerError(
                f"OpenMemory refused to delete {len(ids)} memories of a user: "
                f"HTTP {response.status_code} {response.text[:200]}"
            )
        self._delete_points(ids)

    def _delete_points(self, ids: Sequence[str]) -> None:
        points: list[qm.ExtendedPointId] = list(ids)
        self.client.delete(self.collection, points_selector=qm.PointIdsList(points=points), wait=True)
