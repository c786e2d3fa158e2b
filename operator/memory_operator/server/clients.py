"""Per-client keys: who a key is (by a SHA-256 of it), what it may touch, and how fast it may go.

The server knows each client by a hash of its key, never the key: the clients file (written by the
operator into a Secret the server pods mount, or by hand for the embedded server) holds for each its
name, key hash, access, scopes and quota. A presented key is hashed once and looked up: the cost of
authentication does not grow with the number of clients. Keys are 256 random bits, so a plain
SHA-256 is as strong as a slow hash would be, and a lookup's timing tells nothing of a key.

The file is watched (its identity and modification time polled every `reload_seconds`): a change
takes effect for the next request, without a restart, and a file that does not parse leaves the
clients as they were (logged, counted). A file that is gone means no clients.

Quotas are token buckets per client, in this process: with several replicas behind a Service, each
admits the client's rate (see docs/clients.md). A bucket keeps its level across reloads as long as
its client's quota is the same.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from memory_operator.api.client import ClientAccess, ClientGrant, ClientQuota, ClientsFile
from memory_operator.server.scope_rules import ScopeRules
from memory_operator.server.settings import DEFAULT_CLIENTS_RELOAD_SECONDS

log = logging.getLogger("memory_operator.server.clients")

Clock = Callable[[], float]


def key_sha256(key: str) -> str:
    """The hex SHA-256 of a key, as the clients file holds it."""
    return hashlib.sha256(key.encode()).hexdigest()


class TokenBucket:
    """`rate` tokens a second up to `capacity`; a request takes one. Thread-safe (sync routes run in
    a thread pool)."""

    def __init__(self, rate: float, capacity: int, clock: Clock = time.monotonic) -> None:
        self.rate = rate
        self.capacity = capacity
        self.clock = clock
        self.tokens = float(capacity)
        self.updated = clock()
        self.lock = threading.Lock()

    def take(self) -> float:
        """0 when a token was taken; else the seconds until one will be there (nothing taken)."""
        with self.lock:
            now = self.clock()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= 1:
                self.tokens -= 1
                return 0.0
            return (1 - self.tokens) / self.rate


def _bucket(rate: float | None, burst: int | None, clock: Clock) -> TokenBucket | None:
    return None if rate is None or burst is None else TokenBucket(rate, burst, clock)


@dataclass
class Limits:
    """A client's buckets: requests of any kind, and writes besides."""

    quota: ClientQuota
    requests: TokenBucket | None
    writes: TokenBucket | None

    @classmethod
    def of(cls, quota: ClientQuota, clock: Clock = time.monotonic) -> Limits:
        return cls(
            quota,
            _bucket(quota.requests_per_second, quota.request_burst(), clock),
            _bucket(quota.writes_per_second, quota.writes_burst(), clock),
        )


class Throttled(Exception):
    """The client went over one of its rates: retry after `retry_after` seconds (whole, at least 1)."""

    def __init__(self, client: str, limit: str, wait: float) -> None:
        super().__init__(f"client {client} is over its {limit} rate")
        self.client = client
        self.limit = limit
        self.retry_after = max(1, math.ceil(wait))


@dataclass(frozen=True)
class Client:
    """One client as a request's caller sees it."""

    name: str
    access: ClientAccess
    reach: ScopeRules
    limits: Limits = field(compare=False, repr=False)

    def admit(self, write: bool) -> None:
        """Take a request (and a write) from the client's buckets, or raise Throttled."""
        buckets = [("requests", self.limits.requests)] + ([("writes", self.limits.writes)] if write else [])
        for limit, bucket in buckets:
            if bucket is not None and (wait := bucket.take()) > 0:
                raise Throttled(self.name, limit, wait)

    def admit_write(self) -> None:
        """Take a write only (the request was admitted already)."""
        bucket = self.limits.writes
        if bucket is not None and (wait := bucket.take()) > 0:
            raise Throttled(self.name, "writes", wait)


def _hash_of(grant: ClientGrant) -> str:
    return grant.key_sha256 if grant.key_sha256 is not None else key_sha256(grant.key or "")


class ClientDirectory:
    """The clients by key hash; replaced whole on every reload (readers see the old or the new)."""

    def __init__(self, grants: Iterable[ClientGrant] = (), clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._by_hash: Mapping[str, Client] = {}
        self.replace(grants)

    def replace(self, grants: Iterable[ClientGrant]) -> None:
        kept = {c.name: c.limits for c in self._by_hash.values()}
        by_hash: dict[str, Client] = {}
        for grant in grants:
            limits = kept.get(grant.name)
            if limits is None or limits.quota != grant.quota:
                limits = Limits.of(grant.quota, self.clock)
            by_hash[_hash_of(grant)] = Client(grant.name, grant.access, ScopeRules.of(grant.scopes), limits)
        self._by_hash = by_hash

    def find(self, key: str) -> Client | None:
        return self._by_hash.get(key_sha256(key))

    def __len__(self) -> int:
        return len(self._by_hash)

    def names(self) -> list[str]:
        return sorted(c.name for c in self._by_hash.values())


def parse_clients(text: str) -> list[ClientGrant]:
    """The clients of a file's text (JSON, or YAML); ValueError naming the problem otherwise."""
    try:
        data: Any = json.loads(text)
    except ValueError:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ValueError(f"neither JSON nor YAML: {error}") from None
    if data is None:
        return []
    if not isinstance(data, Mapping):
        raise ValueError("expected a mapping with `clients` at the top level")
    try:
        grants = ClientsFile.model_validate(data).clients
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{where}: {first['msg']}" if where else first["msg"]) from None
    hashes: dict[str, str] = {}
    for grant in grants:
        other = hashes.setdefault(_hash_of(grant), grant.name)
        if other != grant.name:
            raise ValueError(f"clients {other} and {grant.name} have the same key")
    return grants


def load_clients(path: Path) -> list[ClientGrant]:
    """The clients of a file; a file that is not there means none."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return parse_clients(text)


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = os.stat(path)  # follows the kubelet's `..data` symlink to the current file
    except FileNotFoundError:
        return None
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


@dataclass
class ClientsFileWatcher:
    """Keeps a directory in step with its file: polls the file's identity, reloads on a change."""

    path: Path
    directory: ClientDirectory
    reload_seconds: float = DEFAULT_CLIENTS_RELOAD_SECONDS
    on_error: Callable[[], None] = lambda: None
    _seen: tuple[int, int, int] | str | None = "unread"
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def poll(self) -> bool:
        """Reload if the file changed since the last poll; whether the clients were replaced."""
        identity = _identity(self.path)
        if identity == self._seen:
            return False
        self._seen = identity
        try:
            grants = load_clients(self.path)
        except (OSError, ValueError) as error:
            self.on_error()
            log.error("clients file not loaded, previous clients kept: file=%s error=%s", self.path, error)
            return False
        self.directory.replace(grants)
        log.info("clients loaded: file=%s clients=%d", self.path, len(self.directory))
        return True

    def start(self) -> ClientsFileWatcher:
        self.poll()
        self._thread = threading.Thread(target=self._run, name="clients-file", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.reload_seconds):
            try:
                self.poll()
            except Exception as error:  # the watch must outlive any one bad read
                log.error("clients file poll failed: error=%s", type(error).__name__)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
