"""Self-service erasure: every memory of one user, agent or run id, deleted at once and counted.

What a MemoryErasure does from the operator, a client with a key that reaches the whole subject does
here: `POST /api/v1/memories/actions/erase` with exactly one of `user_id`, `agent_id` and `run_id` in
the body (never in the URL: ids are personal data, and URLs end up in access logs). The key must be
read-write and reach every memory of the subject: a MemoryClient scoped to some agents cannot erase a
user, whose memories other agents hold too (403). Nothing is recorded for a restore to re-apply: that
takes a MemoryErasure.
"""

from __future__ import annotations

from typing import Literal

from fastapi import FastAPI
from pydantic import model_validator

from memory_operator.server import models as m
from memory_operator.server.deps import WRITE_BODY, ServiceDep, WriteCaller
from memory_operator.server.store import Scope

ERASE_PATH = "/api/v1/memories/actions/erase"


class EraseRequest(m.ScopedBody):
    """Whose memories: exactly one of `user_id`, `agent_id` and `run_id`."""

    @model_validator(mode="after")
    def _exactly_one(self) -> EraseRequest:
        if sum(v is not None for v in (self.user_id, self.agent_id, self.run_id)) != 1:
            raise ValueError("give exactly one of user_id, agent_id and run_id")
        return self


class EraseResponse(m.Answer):
    subject: Literal["user_id", "agent_id", "run_id"]
    """Which kind of id was erased (the id itself is not repeated)."""
    deleted: int
    """Memories of the subject deleted, in every state and app."""
    related_deleted: int
    """Records derived from them deleted or unlinked too: entities, and the user's app states."""
    remaining: int
    """Memories of the subject counted after the erasure (written meanwhile); 0 when it is complete."""


def add_routes(app: FastAPI) -> None:
    @app.post(ERASE_PATH, tags=["memories"], responses=WRITE_BODY)
    def erase_memories(service: ServiceDep, caller: WriteCaller, body: EraseRequest) -> EraseResponse:
        """Erase every memory of one user, agent or run id: all states and apps, with the entity records
        and app states derived from them; returns how many were deleted.

        The key must reach every memory of the subject (403 otherwise). A restore of a backup taken
        before brings them back: to erase for good, across restores, use a MemoryErasure.
        """
        scope = Scope(user_id=body.user_id, agent_id=body.agent_id, run_id=body.run_id)
        caller.within(scope)
        erased = service.erase(scope)
        (kind,) = scope.as_filters()
        return EraseResponse(
            subject=kind,
            deleted=erased.memories,
            related_deleted=erased.related,
            remaining=erased.remaining,
        )
