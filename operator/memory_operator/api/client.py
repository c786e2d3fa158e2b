"""The MemoryClient custom resource: one application's API key to one store, with scopes and quotas.

Also the file the memory server reads its clients from (`ClientsFile`): for each client only a SHA-256
of its key, its access, scopes and quota. The operator renders it into a Secret that the server pods
mount; the embedded server reads the same format from a file its user writes.

Scopes are allow-lists, one per scope field (user, agent and run ids). An entry is an id (`alice`), an
id prefix ending in `*` (`team-a-*`), or `*` alone for every value. A memory is within a client's reach
when its user id, agent id and run id are each allowed, `*` allowing a memory without that id too;
an empty list allows nothing. A request must name an allowed id for every field whose list is not `*`.
"""

from __future__ import annotations

import math
from collections import Counter
from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Field, model_validator

from memory_operator.api.common import ApiModel, Condition, ObjectMeta, ObjectName, cel, list_map, rules
from memory_operator.server.scope_id import SCOPE_ID_RULE, is_scope_id

KIND = "MemoryClient"
PLURAL = "memoryclients"

ANY = "*"
MAX_SCOPE_ENTRIES = 1000
# An id of at most 253 characters, or a prefix of one and `*`.
ScopeEntry = Annotated[str, Field(min_length=1, max_length=254)]
# Rates are per second; below one a second, the burst still admits one request.
Rate = Annotated[float, Field(ge=0.001, le=1_000_000)]
Burst = Annotated[int, Field(ge=1, le=1_000_000)]
KEY_SHA256_PATTERN = r"^[0-9a-f]{64}$"


class ClientAccess(StrEnum):
    readWrite = "readWrite"
    readOnly = "readOnly"


def entry_problem(entry: str) -> str | None:
    """Why a scope entry is not an id, an id prefix ending in `*`, or `*`; None when it is one."""
    if entry == ANY:
        return None
    id_part = entry.removesuffix(ANY)
    if is_scope_id(id_part):
        return None
    return f"{entry!r} is not an id, an id prefix ending in `*`, nor `*` (ids are {SCOPE_ID_RULE})"


class ClientScopes(ApiModel):
    """Which memories the client may touch, by user, agent and run id. Each list holds ids, id prefixes
    ending in `*` (`team-a-*`), or `*` alone for any value (a memory without that id included). A memory
    is within reach only when all three of its ids are allowed; an empty list allows none."""

    user_ids: list[ScopeEntry] = Field(default_factory=list, max_length=MAX_SCOPE_ENTRIES)
    """User ids the client may act for, e.g. `[alice, "team-a-*"]`; `["*"]` for every user."""
    agent_ids: list[ScopeEntry] = Field(default_factory=list, max_length=MAX_SCOPE_ENTRIES)
    """Agent ids the client may act for; `["*"]` for any agent and memories of no agent."""
    run_ids: list[ScopeEntry] = Field(default_factory=list, max_length=MAX_SCOPE_ENTRIES)
    """Run (session) ids the client may act for; `["*"]` for any run and memories of no run."""

    def problems(self) -> list[str]:
        """Every entry that is not valid, with its place (`userIds[2]: ...`)."""
        found = []
        for field, entries in self._lists():
            for index, entry in enumerate(entries):
                problem = entry_problem(entry)
                if problem is not None:
                    found.append(f"{field}[{index}]: {problem}")
            if ANY in entries and len(entries) > 1:
                found.append(f"{field}: `*` allows every value, so it must be the list's only entry")
        return found

    def empty_fields(self) -> list[str]:
        """The lists that allow nothing (the client then reaches no memory)."""
        return [field for field, entries in self._lists() if not entries]

    def _lists(self) -> tuple[tuple[str, list[str]], ...]:
        return (("userIds", self.user_ids), ("agentIds", self.agent_ids), ("runIds", self.run_ids))


class ClientQuota(ApiModel):
    """Rates the memory server admits from the client, enforced per server replica; beyond them it
    answers 429 with `Retry-After`. Unset rates are unlimited."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            cel("!has(self.burst) || has(self.requestsPerSecond)", "burst needs requestsPerSecond"),
            cel("!has(self.writeBurst) || has(self.writesPerSecond)", "writeBurst needs writesPerSecond"),
        )
    )

    requests_per_second: Rate | None = None
    """Requests of any kind per second, e.g. `20` or `0.5`."""
    burst: Burst | None = None
    """Requests admitted at once after a quiet spell; default: the rate rounded up (at least 1)."""
    writes_per_second: Rate | None = None
    """Writes (adds, updates, deletes, state changes, imports) per second, counted besides requests."""
    write_burst: Burst | None = None
    """Writes admitted at once after a quiet spell; default: the write rate rounded up (at least 1)."""

    @model_validator(mode="after")
    def _bursts_need_rates(self) -> ClientQuota:
        if self.burst is not None and self.requests_per_second is None:
            raise ValueError("burst needs requestsPerSecond")
        if self.write_burst is not None and self.writes_per_second is None:
            raise ValueError("writeBurst needs writesPerSecond")
        return self

    def request_burst(self) -> int | None:
        return _burst(self.requests_per_second, self.burst)

    def writes_burst(self) -> int | None:
        return _burst(self.writes_per_second, self.write_burst)


def _burst(rate: float | None, burst: int | None) -> int | None:
    if rate is None:
        return None
    return burst if burst is not None else max(1, math.ceil(rate))


class MemoryClientSpec(ApiModel):
    """Desired state of a MemoryClient."""

    store: ObjectName
    """The MemoryStore of this namespace the client uses."""
    access: ClientAccess = ClientAccess.readOnly
    """`readWrite`, or `readOnly` (searches and listings only)."""
    scopes: ClientScopes = Field(default_factory=ClientScopes)
    """Which memories the client may touch; requests outside them get 403."""
    quota: ClientQuota = Field(default_factory=ClientQuota)
    """Request and write rates per server replica; unset is unlimited."""


class MemoryClientStatus(ApiModel):
    """Observed state of a MemoryClient; never its key."""

    conditions: list[Condition] = Field(default_factory=list, json_schema_extra=list_map("type"))
    """`Ready`: the key is generated and the store's servers are given its grant."""
    secret_name: str | None = None
    """The Secret with the client's key, the REST base URL and the MCP URL template."""
    observed_generation: int | None = None
    """The `metadata.generation` last reconciled."""


class MemoryClient(ApiModel):
    """An application's API key to one MemoryStore: generated into a Secret, limited to scopes (user,
    agent and run ids), read-write or read-only, with request and write rates."""

    model_config = ConfigDict(extra="ignore")

    api_version: str = "memory-operator.io/v1alpha1"
    kind: str = KIND
    metadata: ObjectMeta
    spec: MemoryClientSpec
    status: MemoryClientStatus | None = None


# --- what the memory server reads -----------------------------------------------------------------


class ClientGrant(ApiModel):
    """One client as the memory server knows it: a SHA-256 of its key, never the key (the operator's
    file); `key` is accepted instead for trying the embedded server with a file of one's own."""

    name: str = Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:@+|-]*$")
    """The client's name: its MemoryClient's, in metrics and logs."""
    key_sha256: str | None = Field(default=None, pattern=KEY_SHA256_PATTERN)
    """Hex SHA-256 of the key the client presents."""
    key: str | None = Field(default=None, min_length=16, max_length=512)
    """The key itself (embedded mode's own files only; the operator writes `keySha256`)."""
    access: ClientAccess = ClientAccess.readOnly
    """`readWrite` or `readOnly`."""
    scopes: ClientScopes = Field(default_factory=ClientScopes)
    """Which memories the client may touch."""
    quota: ClientQuota = Field(default_factory=ClientQuota)
    """Request and write rates (per server process)."""

    @model_validator(mode="after")
    def _one_key_and_valid_scopes(self) -> ClientGrant:
        if (self.key is None) == (self.key_sha256 is None):
            raise ValueError(f"client {self.name}: give exactly one of keySha256 and key")
        problems = self.scopes.problems()
        if problems:
            raise ValueError(f"client {self.name}: invalid scopes: " + "; ".join(problems))
        return self


class ClientsFile(ApiModel):
    """The memory server's clients file (JSON or YAML): `{clients: [...]}`."""

    clients: list[ClientGrant] = Field(default_factory=list)
    """Every client, names unique."""

    @model_validator(mode="after")
    def _unique_names(self) -> ClientsFile:
        counts = Counter(c.name for c in self.clients)
        repeated = sorted(name for name, count in counts.items() if count > 1)
        if repeated:
            raise ValueError(f"client names must be unique: {', '.join(repeated)}")
        return self
