"""Observe: one snapshot of what exists for a store, read from the operator's cache (no API call)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from memory_operator.controller.cache import Cache
from memory_operator.render.clients import store_named
from memory_operator.render.names import client_secret_name, tls_secret_name

Body = dict[str, Any]


@dataclass(frozen=True)
class Snapshot:
    """Everything a decision about one store reads."""

    body: Body
    """The MemoryStore as last seen."""
    children: list[Body] = field(default_factory=list)
    """Its labelled children (and its backups' Jobs), of every kind."""
    secrets: Mapping[str, Body] = field(default_factory=dict)
    """Secrets of its namespace that it names or owns, by name (see `cache.secret_view`)."""
    policies: list[Body] = field(default_factory=list)
    """MemoryPolicies of its namespace."""
    backups: list[Body] = field(default_factory=list)
    """MemoryBackups of its namespace."""
    job_pods: Mapping[str, list[Body]] = field(default_factory=dict)
    """Pods of its finished or running Jobs, by Job name (their termination messages)."""
    clients: list[Body] = field(default_factory=list)
    """MemoryClients of its namespace that name it (their Secrets are in `secrets`)."""
    erasures: list[Body] = field(default_factory=list)
    """MemoryErasures of its namespace (of this store, and of stores its restore comes from)."""

    @property
    def namespace(self) -> str:
        return str(self.body["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    def child(self, kind: str, name: str) -> Body | None:
        return next(
            (c for c in self.children if c["kind"] == kind and c["metadata"]["name"] == name),
            None,
        )

    def of_kind(self, kind: str) -> list[Body]:
        return [c for c in self.children if c["kind"] == kind]


def referenced_secret_names(body: Mapping[str, Any]) -> set[str]:
    """Names of the Secrets a store's spec names (its own generated ones come from its children)."""
    spec = body.get("spec") or {}
    server = spec.get("server") or {}
    found = {(spec.get("auth") or {}).get("existingSecret")}
    for model in ("llm", "embedder"):
        found.add(((server.get(model) or {}).get("apiKeySecretRef") or {}).get("name"))
    s3 = ((spec.get("backup") or {}).get("destination") or {}).get("s3") or {}
    found.add(s3.get("credentialsSecret"))
    tls = spec.get("tls") or {}
    found |= {tls.get("secretName"), tls.get("clientCaSecret")}
    if tls.get("issuerRef"):
        # The Secret cert-manager issues into: its arrival (and each renewal) rolls the pods.
        meta = body.get("metadata") or {}
        found.add(tls_secret_name(store_named(str(meta.get("namespace")), str(meta.get("name")))))
    return {name for name in found if name}


def observe(cache: Cache, body: Body) -> Snapshot:
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    children = cache.children(namespace, name)
    secrets = {c["metadata"]["name"]: c for c in children if c["kind"] == "Secret"}
    for secret_name in referenced_secret_names(body):
        secret = cache.secret(namespace, secret_name)
        if secret is not None:
            secrets[secret_name] = secret
    jobs = [c["metadata"]["name"] for c in children if c["kind"] == "Job"]
    clients = [c for c in cache.clients(namespace) if (c.get("spec") or {}).get("store") == name]
    for client in clients:
        secret_name = client_secret_name(client["metadata"]["name"])
        client_secret = cache.secret(namespace, secret_name)
        if client_secret is not None:
            secrets[secret_name] = client_secret
    return Snapshot(
        body=body,
        children=children,
        secrets=secrets,
        policies=cache.policies(namespace),
        backups=cache.backups(namespace),
        job_pods={job: cache.job_pods(namespace, job) for job in jobs},
        clients=clients,
        erasures=cache.erasures(namespace),
    )
