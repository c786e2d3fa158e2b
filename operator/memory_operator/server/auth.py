"""API keys: who a request is (its Caller) and which memories it may touch.

Upstream clients present a key three ways: `Authorization: Bearer <key>` (OpenMemory's deployments
behind a proxy, MCP clients), `Authorization: Token <key>` (mem0's `MemoryClient`) and
`X-API-Key: <key>` (mem0's REST server). All three are read here, once. The store's own keys (its
admin keys: read-write and read-only, reaching every memory) are compared in constant time; a
client's key (a MemoryClient's) is found by its SHA-256 in the clients directory. A request that
presents more than one credential (two headers, or both kinds) is refused: servers and proxies
disagree on which one counts.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from memory_operator.api.client import ClientAccess
from memory_operator.server.clients import Client, ClientDirectory
from memory_operator.server.scope_rules import ScopeRules
from memory_operator.server.store import EVERYTHING, Owner, Reach, Scope

AUTHORIZATION_SCHEMES = ("bearer", "token")
API_KEY_HEADER = "X-API-Key"


class Access(IntEnum):
    read = 1
    write = 2


class OutsideReach(Exception):
    """The request names a scope its key may not touch."""


@dataclass(frozen=True)
class ScopedKey:
    """A key limited to some scopes (the seam for per-client keys; the server's own two keys reach all)."""

    name: str
    key: str
    access: Access
    reach: Reach


@dataclass(frozen=True)
class ApiKeys:
    api_key: str
    read_only_api_key: str | None = None
    scoped_keys: tuple[ScopedKey, ...] = ()
    # The MemoryClients' keys, by hash; reloaded in place when the clients file changes.
    clients: ClientDirectory | None = None

    def grants(self) -> list[tuple[str, str, Access, Reach]]:
        """Every key with its name, access and reach."""
        keys = [("read-write", self.api_key, Access.write, EVERYTHING)]
        if self.read_only_api_key is not None:
            keys.append(("read-only", self.read_only_api_key, Access.read, EVERYTHING))
        keys.extend((k.name, k.key, k.access, k.reach) for k in self.scoped_keys)
        return keys


@dataclass(frozen=True)
class Caller:
    """An authenticated request: which key (by name, never its value), what it may do and touch."""

    key_name: str
    access: Access
    reach: Reach | ScopeRules = EVERYTHING
    # The MemoryClient the key belongs to (None: one of the store's own keys).
    client: Client | None = None

    def within(self, scope: Scope | None) -> Owner:
        """What a request may touch: its scope when the key reaches it, else (no scope given) all the
        key reaches. The one place where a key's reach is checked, for REST and MCP alike."""
        if scope is None:
            return self.reach
        if not self.reach.permits(scope):
            raise OutsideReach
        return scope


def _header_values(headers: Iterable[tuple[bytes, bytes]], name: str) -> list[str]:
    wanted = name.lower().encode()
    return [value.decode("latin-1") for key, value in headers if key.lower() == wanted]


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The one key a request's raw (ASGI) headers present; None when absent, malformed or ambiguous."""
    listed = list(headers)
    authorization = _header_values(listed, "authorization")
    api_key = _header_values(listed, API_KEY_HEADER)
    if len(authorization) + len(api_key) != 1:
        return None
    if api_key:
        return api_key[0].strip() or None
    scheme, _, token = authorization[0].partition(" ")
    token = token.strip()
    return token if scheme.lower() in AUTHORIZATION_SCHEMES and token else None


def authenticate(headers: Iterable[tuple[bytes, bytes]], keys: ApiKeys) -> Caller | None:
    """The caller a request's headers authenticate, or None.

    Every key is compared, whatever matched before, so the time taken does not tell which key (if
    any) was close.
    """
    presented = presented_key(headers) or ""
    token = presented.encode()
    matched: Caller | None = None
    for name, key, access, reach in keys.grants():
        if hmac.compare_digest(token, key.encode()) and matched is None:
            matched = Caller(key_name=name, access=access, reach=reach)
    if not token:
        return None
    if matched is None and keys.clients is not None:
        client = keys.clients.find(presented)
        if client is not None:
            level = Access.write if client.access == ClientAccess.readWrite else Access.read
            matched = Caller(f"client:{client.name}", level, reach=client.reach, client=client)
    return matched
