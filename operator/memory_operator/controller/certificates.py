"""A store's certificates (`spec.tls`), decided from what exists. Pure: no I/O, the clock given.

Where the serving certificate comes from:
- `tls.secretName`: the user's `kubernetes.io/tls` Secret, served as it is (its keys are checked);
- `tls.issuerRef`: cert-manager issues it into `<store>-tls` from the Certificate the operator renders
  (refused, with a clear condition, when the cluster has no cert-manager);
- neither: the operator keeps a CA of its own for the store in `<store>-ca` and signs the certificate in
  `<store>-tls` with it (so also, under mutual TLS, the jobs' client certificate in `<store>-jobs-tls`).

Generated certificates are kept while they are good, so that every reconcile renders the same Secrets
(like the generated API keys): new material comes from a `Minter` only when something is missing, does
not parse, names other hosts, was signed by another CA, or comes near its end:

- a leaf certificate lives `LEAF_VALIDITY` (90 days) and is renewed `LEAF_RENEW_BEFORE` (30 days) before
  it expires;
- the CA lives `CA_VALIDITY` (5 years); `CA_RENEW_BEFORE` (180 days) before it expires, a successor CA
  joins the trust bundle (`ca.crt`) while the old one still signs; `CA_OVERLAP` (30 days) later the
  successor signs new certificates, and the old CA stays in the bundle until it expires. Clients that
  copy the bundle have a month to take the new one before any certificate depends on it.

A digest of what the pods serve and trust rolls Qdrant and the server when it changes.

`pki` (and with it `cryptography`, some 8 MB of the operator's memory) is imported by the functions
that make or read certificates: an operator whose stores have no TLS never loads it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from memory_operator.api.common import Condition
from memory_operator.api.store import MemoryStore
from memory_operator.controller import status
from memory_operator.controller.credentials import secret_values
from memory_operator.controller.validation import Problem, secret_has_key
from memory_operator.render import names
from memory_operator.render import tls as render_tls

if TYPE_CHECKING:
    from cryptography import x509

    from memory_operator.pki import KeyPair

LEAF_VALIDITY = dt.timedelta(days=90)
LEAF_RENEW_BEFORE = dt.timedelta(days=30)
CA_VALIDITY = dt.timedelta(days=5 * 365)
CA_RENEW_BEFORE = dt.timedelta(days=180)
CA_OVERLAP = dt.timedelta(days=30)

CONDITION = "CertificatesReady"
Body = Mapping[str, Any]


class Minter(Protocol):
    """Where new certificates come from (the controller keeps what it minted until the Secrets show)."""

    def ca(self, common_name: str, now: dt.datetime) -> KeyPair: ...

    def leaf(
        self, ca: KeyPair, common_name: str, dns_names: Sequence[str], now: dt.datetime, *, server: bool
    ) -> KeyPair: ...

    def settled(self, pair: KeyPair) -> None:
        """`pair` is in a Secret now: what was minted for it need not be given again."""


class FreshMinter:
    """New keys and certificates on every call."""

    def ca(self, common_name: str, now: dt.datetime) -> KeyPair:
        from memory_operator import pki

        return pki.make_ca(common_name, now, CA_VALIDITY)

    def leaf(
        self, ca: KeyPair, common_name: str, dns_names: Sequence[str], now: dt.datetime, *, server: bool
    ) -> KeyPair:
        from memory_operator import pki

        return pki.make_leaf(ca, common_name, dns_names, now, now + LEAF_VALIDITY, server=server, client=True)

    def settled(self, pair: KeyPair) -> None:
        pass


class KeptMinter:
    """A minter that gives the same certificate again for the same request within `keep`, until a
    Secret holds it: a reconcile that runs before the watch shows the Secrets it wrote renders the same
    ones, never new ones; a Secret deleted afterwards gets a new certificate."""

    def __init__(self, keep: dt.timedelta = dt.timedelta(minutes=10), fresh: Minter | None = None) -> None:
        self.keep = keep
        self.fresh = fresh or FreshMinter()
        self._kept: dict[tuple[Any, ...], tuple[dt.datetime, KeyPair]] = {}

    def _get(self, key: tuple[Any, ...], now: dt.datetime, make: Any) -> KeyPair:
        kept = self._kept.get(key)
        if kept is not None and now - kept[0] < self.keep:
            return kept[1]
        made: KeyPair = make()
        # One entry per kind of request: the newest.
        self._kept = {k: v for k, v in self._kept.items() if k[0] != key[0]} | {key: (now, made)}
        return made

    def ca(self, common_name: str, now: dt.datetime) -> KeyPair:
        return self._get(("ca", common_name), now, lambda: self.fresh.ca(common_name, now))

    def settled(self, pair: KeyPair) -> None:
        self._kept = {k: v for k, v in self._kept.items() if v[1] != pair}

    def leaf(
        self, ca: KeyPair, common_name: str, dns_names: Sequence[str], now: dt.datetime, *, server: bool
    ) -> KeyPair:
        key = ("leaf-server" if server else "leaf-client", ca.certificate, common_name, tuple(dns_names))
        return self._get(key, now, lambda: self.fresh.leaf(ca, common_name, dns_names, now, server=server))


@dataclass(frozen=True)
class Tls:
    """The store's certificates as decided: what to render, what keeps the spec from applying, the
    condition to report and the renewals to tell in Events."""

    certificates: render_tls.Certificates = render_tls.NONE
    problems: list[Problem] = field(default_factory=list)
    condition: Condition | None = None
    renewed: list[str] = field(default_factory=list)
    """What was renewed, for Events (never a key)."""


DISABLED = Tls()


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def secret_fingerprint(secret: Body | None, keys: Sequence[str]) -> str:
    """A digest of `keys` of a Secret, whole (the operator's) or as the cache keeps others' (digests)."""
    if secret is None:
        return ""
    digests = dict(secret.get("digests") or {})
    for key, value in (secret.get("data") or {}).items():
        digests[key] = hashlib.sha256(str(value).encode()).hexdigest()
    return _digest(*(f"{key}={digests.get(key, '')}" for key in keys))


def ca_bundle(secret: Body | None) -> str | None:
    """The `ca.crt` of a certificate Secret: the operator's own Secrets are kept whole in its cache,
    and any other Secret's CA bundle too (it is public)."""
    if secret is None:
        return None
    encoded = (secret.get("data") or {}).get(render_tls.CA_KEY) or (secret.get("public") or {}).get(
        render_tls.CA_KEY
    )
    if not encoded:
        return None
    try:
        return base64.b64decode(encoded).decode()
    except (ValueError, UnicodeDecodeError):
        return None


# -- generated ------------------------------------------------------------------------------------


def _expires_within(certificate: x509.Certificate, now: dt.datetime, margin: dt.timedelta) -> bool:
    return certificate.not_valid_after_utc - now <= margin


@dataclass(frozen=True)
class Authority:
    """The store's CA as decided: the one signing, a successor being introduced, the trust bundle."""

    signing: KeyPair
    next: KeyPair | None
    bundle: list[x509.Certificate]
    renewed: list[str]


def authority(store: MemoryStore, ca_secret: Body | None, now: dt.datetime, minter: Minter) -> Authority:
    """The CA from its Secret, renewed as the module says; a new one when there is none that works."""
    from memory_operator import pki

    values = secret_values(ca_secret)
    signing = pki.load_pair(values.get(render_tls.CERT_KEY), values.get(render_tls.KEY_KEY))
    successor = pki.load_pair(values.get(render_tls.NEXT_CERT_KEY), values.get(render_tls.NEXT_KEY_KEY))
    for pair in (signing, successor):
        if pair is not None:
            minter.settled(pair)
    previous = [c for c in pki.load_bundle(values.get(render_tls.CA_KEY)) if c.not_valid_after_utc > now]
    common_name = f"{store.metadata.namespace}/{store.metadata.name} memory-operator CA"
    renewed: list[str] = []
    if signing is None or signing.not_after <= now:
        if successor is not None and successor.not_after > now:
            signing, successor = successor, None
            renewed.append("the successor CA now signs")
        else:
            signing, successor = minter.ca(common_name, now), None
            renewed.append("a new CA")
    if successor is not None and now >= successor.parsed.not_valid_before_utc + pki.BACKDATE + CA_OVERLAP:
        signing, successor = successor, None
        renewed.append("the successor CA now signs")
    if successor is None and _expires_within(signing.parsed, now, CA_RENEW_BEFORE):
        successor = minter.ca(common_name, now)
        renewed.append("a successor CA joins the trust bundle")
    bundle = [signing.parsed, *([successor.parsed] if successor else []), *previous]
    return Authority(signing, successor, bundle, renewed)


def leaf(
    existing: Body | None,
    ca: KeyPair,
    common_name: str,
    dns_names: Sequence[str],
    now: dt.datetime,
    minter: Minter,
    *,
    server: bool,
) -> tuple[KeyPair, bool]:
    """The certificate of a Secret when it is still good for `dns_names` under `ca`, else a new one; and
    whether it is new."""
    from memory_operator import pki

    values = secret_values(existing)
    kept = pki.load_pair(values.get(render_tls.CERT_KEY), values.get(render_tls.KEY_KEY))
    if kept is not None:
        parsed = kept.parsed
        good = (
            pki.issued_by(parsed, ca.parsed)
            and sorted(pki.dns_names(parsed)) == sorted(dns_names)
            and not _expires_within(parsed, now, LEAF_RENEW_BEFORE)
        )
        if good:
            minter.settled(kept)
            return kept, False
    return minter.leaf(ca, common_name, dns_names, now, server=server), True


def generated(
    store: MemoryStore, secrets: Mapping[str, Body], now: dt.datetime, minter: Minter
) -> tuple[render_tls.Generated, list[str]]:
    """The store's CA, and the certificates it signs: the serving one (unless another source serves)
    and, under mutual TLS, the jobs' client certificate."""
    from memory_operator import pki

    ca = authority(store, secrets.get(names.tls_ca_secret_name(store)), now, minter)
    renewed = list(ca.renewed)
    serving = jobs_client = None
    if render_tls.generates_serving(store):
        dns = names.tls_dns_names(store)
        serving, new = leaf(
            secrets.get(names.tls_secret_name(store)), ca.signing, dns[0], dns, now, minter, server=True
        )
        renewed += ["the serving certificate"] if new else []
    if render_tls.mutual(store):
        jobs_client, new = leaf(
            secrets.get(names.jobs_tls_secret_name(store)),
            ca.signing,
            f"{store.metadata.namespace}/{store.metadata.name} jobs",
            [],
            now,
            minter,
            server=False,
        )
        renewed += ["the jobs' client certificate"] if new else []
    material = render_tls.Generated(
        ca=ca.signing,
        bundle=pki.bundle_pem(ca.bundle),
        next_ca=ca.next,
        serving=serving,
        jobs_client=jobs_client,
    )
    return material, renewed


# -- every source ---------------------------------------------------------------------------------


def _condition(ok: bool | None, reason: str, message: str, store: MemoryStore) -> Condition:
    return status.condition(CONDITION, ok, reason, message, store.metadata.generation)


def user_secret_problems(store: MemoryStore, secret: Body | None, name: str) -> list[Problem]:
    namespace = store.metadata.namespace
    if secret is None:
        return [
            Problem(
                "TLSSecretNotFound",
                f"spec.tls.secretName names Secret {name}, which does not exist in namespace {namespace}; "
                "create it (kubernetes.io/tls, with tls.crt and tls.key)",
            )
        ]
    wanted = [render_tls.CERT_KEY, render_tls.KEY_KEY]
    if store.spec.vector_store.replicas > 1:
        # Qdrant's peers verify each other against it.
        wanted.append(render_tls.CA_KEY)
    missing = [key for key in wanted if not secret_has_key(secret, key)]
    if missing:
        return [
            Problem(
                "TLSSecretKeyMissing",
                f"Secret {name} (spec.tls.secretName) has no {', '.join(missing)}; add "
                + ("them" if len(missing) > 1 else "it"),
            )
        ]
    return []


def client_ca_problems(store: MemoryStore, secret: Body | None, name: str) -> list[Problem]:
    if secret is None:
        return [
            Problem(
                "ClientCASecretNotFound",
                f"spec.tls.clientCaSecret names Secret {name}, which does not exist in namespace "
                f"{store.metadata.namespace}; create it with the client CA bundle in ca.crt",
            )
        ]
    if not secret_has_key(secret, render_tls.CA_KEY):
        return [Problem("ClientCASecretKeyMissing", f"Secret {name} (spec.tls.clientCaSecret) has no ca.crt")]
    return []


def decide(
    store: MemoryStore,
    secrets: Mapping[str, Body],
    now: dt.datetime,
    minter: Minter,
    *,
    cert_manager: bool = True,
) -> Tls:
    """The store's certificates from the Secrets that exist (`secrets`: by name, the store's own and
    those its spec names); `cert_manager`: whether the cluster serves cert-manager's Certificates."""
    tls = store.spec.tls
    if tls is None or not tls.enabled:
        return DISABLED
    problems: list[Problem] = []
    material: render_tls.Generated | None = None
    renewed: list[str] = []
    if render_tls.needs_ca(store):
        material, renewed = generated(store, secrets, now, minter)
    serving_name = names.tls_secret_name(store)
    if tls.secret_name:
        serving = secrets.get(tls.secret_name)
        problems += user_secret_problems(store, serving, tls.secret_name)
        served = secret_fingerprint(serving, [render_tls.CERT_KEY, render_tls.CA_KEY])
        condition = _condition(
            True, "SecretProvided", f"serving the certificate of Secret {serving_name}", store
        )
    elif tls.issuer_ref is not None:
        certificate = names.certificate_name(store)
        if not cert_manager:
            problems.append(
                Problem(
                    "CertManagerNotInstalled",
                    "spec.tls.issuerRef asks cert-manager for a certificate, but the cluster serves no "
                    "cert-manager.io/v1 Certificates; install cert-manager, or drop issuerRef for "
                    "certificates the operator generates",
                )
            )
        serving = secrets.get(serving_name)
        issued = serving is not None and secret_has_key(serving, render_tls.CERT_KEY)
        served = secret_fingerprint(serving, [render_tls.CERT_KEY, render_tls.CA_KEY]) if issued else ""
        condition = (
            _condition(
                True,
                "Issued",
                f"cert-manager issued Certificate {certificate} into Secret {serving_name}",
                store,
            )
            if issued
            else _condition(
                False,
                "Issuing",
                f"waiting for cert-manager to issue Certificate {certificate} into Secret {serving_name}",
                store,
            )
        )
    else:
        assert material is not None and material.serving is not None
        served = _digest(material.serving.certificate, material.bundle)
        expiry = material.serving.not_after.strftime("%Y-%m-%dT%H:%M:%SZ")
        condition = _condition(
            True,
            "Generated",
            f"the operator's CA signs the certificate in Secret {serving_name}, valid until {expiry}",
            store,
        )
    client_checksum = None
    if tls.client_ca_secret:
        client_secret = secrets.get(tls.client_ca_secret)
        problems += client_ca_problems(store, client_secret, tls.client_ca_secret)
        # The server trusts the client CA and, for the jobs' client certificate, the store's CA.
        trusted = secret_fingerprint(client_secret, [render_tls.CA_KEY])
        client_checksum = _digest(trusted, material.bundle if material is not None else "")
    certificates = render_tls.Certificates(
        generated=material, checksum=_digest(served) if served else None, client_checksum=client_checksum
    )
    return Tls(
        certificates=certificates,
        problems=problems,
        condition=condition,
        renewed=renewed,
    )
