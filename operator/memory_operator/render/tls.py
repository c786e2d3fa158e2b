"""TLS of a store (`spec.tls`): the certificate Secrets the operator generates, the cert-manager
`Certificate` it asks for, and what puts certificates into the pods.

Qdrant and the memory server mount the whole certificate Secret (`tls.crt`, `tls.key`, `ca.crt`); the
jobs mount its `ca.crt` only, to verify the store's endpoints. A digest of the certificates goes into the
pod templates of Qdrant and the server (`memory-operator.io/tls-checksum`), so that a new certificate
rolls them: the server's Deployment starts a new pod before it stops an old one, and Qdrant's StatefulSet
waits for each node to be ready before the next. With TLS disabled nothing here adds anything.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memory_operator import env, labels
from memory_operator.api.store import MemoryStore
from memory_operator.render import meta, names
from memory_operator.render.meta import Manifest

if TYPE_CHECKING:
    from memory_operator.pki import KeyPair

CERT_KEY = "tls.crt"
KEY_KEY = "tls.key"
CA_KEY = "ca.crt"
# In the CA Secret: the CA that will sign once clients had time to trust it (see controller/certificates).
NEXT_CERT_KEY = "next.crt"
NEXT_KEY_KEY = "next.key"
CHECKSUM = f"{labels.PREFIX}/tls-checksum"

VOLUME = "tls"
CA_VOLUME = "tls-ca"
CLIENT_CA_VOLUME = "client-ca"
STORE_CA_VOLUME = "store-ca"
CLIENT_VOLUME = "client-tls"
QDRANT_TLS_DIR = "/qdrant/tls"
# Owner and group may read (the pods' fsGroup owns the files); nobody else.
SECRET_MODE = 0o440
# Qdrant reloads the REST API's certificate from disk this often (its gRPC and peer-to-peer listeners
# only at a restart, which the checksum brings).
QDRANT_CERT_TTL_SECONDS = 3600
CERT_MANAGER_API_VERSION = "cert-manager.io/v1"


@dataclass(frozen=True)
class Generated:
    """Certificates the operator keeps for a store, as PEM: its CA (and a successor being introduced),
    the bundle clients trust, the certificate Qdrant and the server serve, and the jobs' client
    certificate under mutual TLS."""

    ca: KeyPair
    bundle: str
    next_ca: KeyPair | None = None
    serving: KeyPair | None = None
    jobs_client: KeyPair | None = None


@dataclass(frozen=True)
class Certificates:
    """What the controller decided about a store's certificates, for the renderers."""

    generated: Generated | None = None
    """The certificates the operator generates (None when it generates none, or with `--no-secrets`)."""
    checksum: str | None = None
    """A digest of the served certificate and the CA bundle: pods annotated with it roll when it
    changes; None while there is no certificate yet."""
    client_checksum: str | None = None
    """Under mutual TLS, a digest of the client CAs the server trusts (a change rolls the server)."""


NONE = Certificates()


def enabled(store: MemoryStore) -> bool:
    return store.spec.tls_enabled


def generates_serving(store: MemoryStore) -> bool:
    """The operator makes the serving certificate itself (no Secret named, no issuer)."""
    tls = store.spec.tls
    return tls is not None and tls.enabled and not tls.secret_name and tls.issuer_ref is None


def mutual(store: MemoryStore) -> bool:
    """The server demands client certificates."""
    tls = store.spec.tls
    return tls is not None and tls.enabled and bool(tls.client_ca_secret)


def needs_ca(store: MemoryStore) -> bool:
    """The operator keeps a CA for the store: to sign the serving certificate, or the jobs' client
    certificate under mutual TLS."""
    return generates_serving(store) or mutual(store)


def _encoded(values: dict[str, str]) -> dict[str, str]:
    return {key: base64.b64encode(value.encode()).decode() for key, value in sorted(values.items())}


def _secret(store: MemoryStore, name: str, values: dict[str, str]) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta.metadata(store, name, meta.SERVER, meta.CREDENTIALS),
        "type": "kubernetes.io/tls",
        "data": _encoded(values),
    }


def secrets(store: MemoryStore, generated: Generated | None) -> list[Manifest]:
    """The CA Secret (read by the operator alone), the serving certificate's and the jobs' client
    certificate's, from what the controller decided."""
    if generated is None or not needs_ca(store):
        return []
    ca = {CERT_KEY: generated.ca.certificate, KEY_KEY: generated.ca.key, CA_KEY: generated.bundle}
    if generated.next_ca is not None:
        ca |= {NEXT_CERT_KEY: generated.next_ca.certificate, NEXT_KEY_KEY: generated.next_ca.key}
    manifests = [_secret(store, names.tls_ca_secret_name(store), ca)]
    if generates_serving(store) and generated.serving is not None:
        serving = generated.serving
        values = {CERT_KEY: serving.certificate, KEY_KEY: serving.key, CA_KEY: generated.bundle}
        manifests.append(_secret(store, names.tls_secret_name(store), values))
    if mutual(store) and generated.jobs_client is not None:
        client = generated.jobs_client
        values = {CERT_KEY: client.certificate, KEY_KEY: client.key, CA_KEY: generated.bundle}
        manifests.append(_secret(store, names.jobs_tls_secret_name(store), values))
    return manifests


def certificate(store: MemoryStore) -> Manifest | None:
    """The cert-manager Certificate of `tls.issuerRef`. Its Secret carries the store's labels
    (`secretTemplate`), so that the operator watches it as one of the store's own."""
    tls = store.spec.tls
    if tls is None or not tls.enabled or tls.issuer_ref is None:
        return None
    issuer = tls.issuer_ref
    own_labels = meta.labels(store, meta.SERVER, meta.CREDENTIALS)
    return {
        "apiVersion": CERT_MANAGER_API_VERSION,
        "kind": "Certificate",
        "metadata": meta.metadata(store, names.certificate_name(store), meta.SERVER, meta.CREDENTIALS),
        "spec": {
            "secretName": names.tls_secret_name(store),
            "secretTemplate": {"labels": own_labels},
            "commonName": names.tls_dns_names(store)[0],
            "dnsNames": names.tls_dns_names(store),
            "issuerRef": {"name": issuer.name, "kind": issuer.kind, "group": issuer.group},
            # Qdrant's peers authenticate each other with it: a client certificate too.
            "usages": ["digital signature", "server auth", "client auth"],
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
        },
    }


def pod_annotations(certificates: Certificates, *, server: bool = False) -> dict[str, str]:
    """The pod template annotation that rolls the pods when the certificates they serve and trust
    change (for the server, the client CAs too)."""
    if not certificates.checksum:
        return {}
    if server and certificates.client_checksum:
        both = f"{certificates.checksum}\0{certificates.client_checksum}"
        return {CHECKSUM: hashlib.sha256(both.encode()).hexdigest()}
    return {CHECKSUM: certificates.checksum}


def _secret_volume(name: str, secret: str, keys: list[str] | None = None, optional: bool = False) -> Any:
    source: dict[str, Any] = {"secretName": secret, "defaultMode": SECRET_MODE}
    if keys is not None:
        source["items"] = [{"key": key, "path": key} for key in keys]
    if optional:
        source["optional"] = True
    return {"name": name, "secret": source}


# -- Qdrant ---------------------------------------------------------------------------------------


def qdrant_env(store: MemoryStore, distributed: bool) -> list[dict[str, Any]]:
    """Qdrant's TLS settings: its REST and gRPC API, and with several nodes their peer-to-peer traffic
    (mutual TLS against `ca.crt`)."""
    if not enabled(store):
        return []
    variables = [
        meta.env_value("QDRANT__SERVICE__ENABLE_TLS", "true"),
        meta.env_value("QDRANT__TLS__CERT", f"{QDRANT_TLS_DIR}/{CERT_KEY}"),
        meta.env_value("QDRANT__TLS__KEY", f"{QDRANT_TLS_DIR}/{KEY_KEY}"),
        meta.env_value("QDRANT__TLS__CERT_TTL", QDRANT_CERT_TTL_SECONDS),
    ]
    if distributed:
        variables += [
            meta.env_value("QDRANT__CLUSTER__P2P__ENABLE_TLS", "true"),
            meta.env_value("QDRANT__TLS__CA_CERT", f"{QDRANT_TLS_DIR}/{CA_KEY}"),
        ]
    return variables


def qdrant_volumes(store: MemoryStore) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if not enabled(store):
        return [], []
    volume = _secret_volume(VOLUME, names.tls_secret_name(store))
    return [volume], [{"name": VOLUME, "mountPath": QDRANT_TLS_DIR, "readOnly": True}]


# -- the memory server ----------------------------------------------------------------------------


def server_env(store: MemoryStore) -> list[dict[str, Any]]:
    """The server serves HTTPS with the store's certificate, verifies Qdrant against `ca.crt`, and under
    mutual TLS demands client certificates of the client CA's (or the store CA's: the jobs') and answers
    probes on a plain port of their own."""
    if not enabled(store):
        return []
    variables = [
        meta.env_value(env.TLS_CERT_FILE, f"{env.TLS_DIR}/{CERT_KEY}"),
        meta.env_value(env.TLS_KEY_FILE, f"{env.TLS_DIR}/{KEY_KEY}"),
        meta.env_value(env.TLS_CA_FILE, f"{env.TLS_DIR}/{CA_KEY}"),
    ]
    if mutual(store):
        cas = [f"{env.CLIENT_CA_DIR}/{CA_KEY}", f"{env.CLIENT_CA_DIR}/store/{CA_KEY}"]
        variables += [
            meta.env_value(env.TLS_CLIENT_CA_FILE, ",".join(cas)),
            meta.env_value(env.HEALTH_PORT_VARIABLE, env.HEALTH_PORT),
        ]
    return variables


def server_volumes(store: MemoryStore) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if not enabled(store):
        return [], []
    volumes = [_secret_volume(VOLUME, names.tls_secret_name(store))]
    mounts = [{"name": VOLUME, "mountPath": env.TLS_DIR, "readOnly": True}]
    tls = store.spec.tls
    if mutual(store) and tls is not None and tls.client_ca_secret:
        volumes += [
            _secret_volume(CLIENT_CA_VOLUME, tls.client_ca_secret, [CA_KEY]),
            _secret_volume(STORE_CA_VOLUME, names.tls_ca_secret_name(store), [CA_KEY]),
        ]
        mounts += [
            {"name": CLIENT_CA_VOLUME, "mountPath": env.CLIENT_CA_DIR, "readOnly": True},
            {"name": STORE_CA_VOLUME, "mountPath": f"{env.CLIENT_CA_DIR}/store", "readOnly": True},
        ]
    return volumes, mounts


def probe_scheme(store: MemoryStore) -> str | None:
    """`scheme` of an httpGet probe on a TLS port (the kubelet does not verify the certificate)."""
    return "HTTPS" if enabled(store) else None


# -- the jobs -------------------------------------------------------------------------------------


def job_env(store: MemoryStore, client: bool = False) -> list[dict[str, Any]]:
    """The CA bundle a job verifies the store's endpoints with; and, for a job that calls a server
    demanding client certificates, the jobs' own."""
    if not enabled(store):
        return []
    variables = [meta.env_value(env.TLS_CA_FILE, f"{env.TLS_DIR}/{CA_KEY}")]
    if client and mutual(store):
        variables += [
            meta.env_value(env.TLS_CLIENT_CERT_FILE, f"{env.CLIENT_TLS_DIR}/{CERT_KEY}"),
            meta.env_value(env.TLS_CLIENT_KEY_FILE, f"{env.CLIENT_TLS_DIR}/{KEY_KEY}"),
        ]
    return variables


def job_volumes(
    store: MemoryStore, client: bool = False
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`ca.crt` of the certificate Secret (optional: a user's Secret may have none, and the jobs then
    trust the system's CAs); never its key."""
    if not enabled(store):
        return [], []
    volumes = [_secret_volume(CA_VOLUME, names.tls_secret_name(store), [CA_KEY], optional=True)]
    mounts = [{"name": CA_VOLUME, "mountPath": env.TLS_DIR, "readOnly": True}]
    if client and mutual(store):
        volumes.append(_secret_volume(CLIENT_VOLUME, names.jobs_tls_secret_name(store), [CERT_KEY, KEY_KEY]))
        mounts.append({"name": CLIENT_VOLUME, "mountPath": env.CLIENT_TLS_DIR, "readOnly": True})
    return volumes, mounts
