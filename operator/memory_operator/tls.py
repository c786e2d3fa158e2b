"""TLS of the processes the operator runs: how their clients verify a peer, and how the memory server
serves.

Every client verifies: against the store's CA bundle when `MEMORY_TLS_CA_FILE` names one that exists
(the operator mounts the store's `ca.crt` there), else against the system's trust store (Mozilla's, as
httpx does). There is no switch that turns verification off.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path

from memory_operator import env

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2


def _existing(path: str | Path | None) -> str | None:
    return str(path) if path and Path(path).is_file() else None


def ca_file(given: str | Path | None = None) -> str | None:
    """The CA bundle clients verify with: `given`, else `MEMORY_TLS_CA_FILE`; `None` when it names no
    file (the system's trust store then)."""
    return _existing(given if given is not None else env.get(env.TLS_CA_FILE))


def client_context(
    ca: str | Path | None = None,
    certificate: str | Path | None = None,
    key: str | Path | None = None,
) -> ssl.SSLContext:
    """A context that verifies the server's certificate and name against `ca_file(ca)`; it presents a
    client certificate when one is given, or named by `MEMORY_TLS_CLIENT_CERT_FILE` and its key file."""
    bundle = ca_file(ca)
    if bundle is not None:
        context = ssl.create_default_context(cafile=bundle)
    else:
        import certifi

        context = ssl.create_default_context(cafile=certifi.where())
    context.minimum_version = MINIMUM_VERSION
    cert_file = _existing(certificate if certificate is not None else env.get(env.TLS_CLIENT_CERT_FILE))
    key_file = _existing(key if key is not None else env.get(env.TLS_CLIENT_KEY_FILE))
    if cert_file is not None:
        context.load_cert_chain(cert_file, key_file)
    return context


def context_of(ca_bundle: str | None) -> ssl.SSLContext:
    """A context that verifies against `ca_bundle` (PEM text), else the system's trust store."""
    if not ca_bundle:
        return client_context(ca="")
    context = ssl.create_default_context(cadata=ca_bundle)
    context.minimum_version = MINIMUM_VERSION
    return context


def verify(
    url: str, context: ssl.SSLContext | None = None, ca: str | Path | None = None
) -> ssl.SSLContext | bool:
    """The `verify` argument of an httpx client of `url` (qdrant-client passes it on to its own):
    `context`, else `client_context(ca)`, for `https`; httpx's default for plain HTTP, where there is
    no certificate to verify."""
    if not url.lower().startswith("https://"):
        return True
    return context if context is not None else client_context(ca)


def server_context(
    certificate: str | Path, key: str | Path, client_cas: Sequence[str | Path] = ()
) -> ssl.SSLContext:
    """The memory server's context: its certificate, TLS 1.2 or newer and, with `client_cas`, a client
    certificate signed by one of them demanded of every connection."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_VERSION
    context.load_cert_chain(str(certificate), str(key))
    if client_cas:
        context.verify_mode = ssl.CERT_REQUIRED
        for bundle in client_cas:
            context.load_verify_locations(cafile=str(bundle))
    return context
