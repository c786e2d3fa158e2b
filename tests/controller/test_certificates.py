"""A store's certificates, decided with a fake clock: generated once and kept, renewed before they
expire (the leaf 30 days before, the CA through a successor trusted a month before it signs), taken
from the user's Secret or from cert-manager, refused with a reason when they cannot work."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Mapping
from typing import Any

import pytest
from cryptography import x509

from memory_operator import pki
from memory_operator.api.store import MemoryStore
from memory_operator.controller import certificates, decide
from memory_operator.controller.certificates import FreshMinter, KeptMinter, Tls
from memory_operator.controller.snapshot import Snapshot
from memory_operator.render import Credentials, RenderSettings, names
from memory_operator.render import tls as render_tls

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def store(**tls: Any) -> MemoryStore:
    spec: dict[str, Any] = {"tls": {"mode": "enabled", **tls}}
    return MemoryStore.model_validate(
        {"metadata": {"name": "mem", "namespace": "agents", "generation": 1}, "spec": spec}
    )


def secrets_of(s: MemoryStore, decided: Tls) -> dict[str, dict[str, Any]]:
    """The Secrets the decision renders, as the cache would then hold them (ours whole)."""
    return {m["metadata"]["name"]: m for m in render_tls.secrets(s, decided.certificates.generated)}


def decide_at(
    s: MemoryStore, now: dt.datetime, secrets: Mapping[str, Any] | None = None, **kwargs: Any
) -> Tls:
    return certificates.decide(s, secrets or {}, now, FreshMinter(), **kwargs)


def values(secret: Mapping[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def serving(decided: Tls) -> x509.Certificate:
    generated = decided.certificates.generated
    assert generated is not None and generated.serving is not None
    return generated.serving.parsed


def ca_of(decided: Tls) -> x509.Certificate:
    generated = decided.certificates.generated
    assert generated is not None
    return generated.ca.parsed


def bundle(decided: Tls) -> list[x509.Certificate]:
    generated = decided.certificates.generated
    assert generated is not None
    return pki.load_bundle(generated.bundle)


def test_disabled_decides_nothing() -> None:
    plain = MemoryStore.model_validate({"metadata": {"name": "mem", "namespace": "agents"}})
    assert certificates.decide(plain, {}, T0, FreshMinter()) == certificates.DISABLED
    off = store(mode="disabled")
    assert certificates.decide(off, {}, T0, FreshMinter()) == certificates.DISABLED


def test_a_new_store_gets_a_ca_and_a_certificate_for_every_name_it_serves() -> None:
    s = store()
    decided = decide_at(s, T0)
    leaf, ca = serving(decided), ca_of(decided)
    assert pki.issued_by(leaf, ca)
    assert sorted(pki.dns_names(leaf)) == sorted(names.tls_dns_names(s))
    assert "mem-server.agents.svc" in pki.dns_names(leaf)
    assert "*.mem-qdrant-headless.agents.svc" in pki.dns_names(leaf)
    assert leaf.not_valid_after_utc == T0 + certificates.LEAF_VALIDITY
    # Servers and, for Qdrant's peers, clients.
    usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {u._name for u in usages} == {"serverAuth", "clientAuth"}
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert bundle(decided) == [ca]
    assert decided.condition is not None and decided.condition.status == "True"
    assert decided.certificates.checksum
    assert decided.renewed == ["a new CA", "the serving certificate"]
    rendered = secrets_of(s, decided)
    assert set(rendered) == {"mem-ca", "mem-tls"}
    assert set(values(rendered["mem-tls"])) == {"tls.crt", "tls.key", "ca.crt"}


def test_what_exists_is_kept_so_every_reconcile_renders_the_same() -> None:
    s = store()
    first = decide_at(s, T0)
    secrets = secrets_of(s, first)
    for later in (T0 + DAY, T0 + 59 * DAY):
        again = decide_at(s, later, secrets)
        assert secrets_of(s, again) == secrets
        assert again.certificates.checksum == first.certificates.checksum
        assert again.renewed == []


def test_the_certificate_is_renewed_30_days_before_it_expires_by_the_same_ca() -> None:
    s = store()
    first = decide_at(s, T0)
    secrets = secrets_of(s, first)
    due = T0 + certificates.LEAF_VALIDITY - certificates.LEAF_RENEW_BEFORE
    assert decide_at(s, due - dt.timedelta(minutes=1), secrets).renewed == []
    renewed = decide_at(s, due, secrets)
    assert renewed.renewed == ["the serving certificate"]
    assert serving(renewed).serial_number != serving(first).serial_number
    assert serving(renewed).not_valid_after_utc == due + certificates.LEAF_VALIDITY
    assert ca_of(renewed) == ca_of(first)
    # The pods roll: their annotation changes.
    assert renewed.certificates.checksum != first.certificates.checksum


def test_the_ca_is_renewed_through_a_successor_trusted_a_month_before_it_signs() -> None:
    s = store()
    first = decide_at(s, T0)
    old_ca = ca_of(first)
    start = T0 + certificates.CA_VALIDITY - certificates.CA_RENEW_BEFORE
    # 180 days before the CA expires, a successor joins the bundle; the old CA still signs.
    introduced = decide_at(s, start, secrets_of(s, first))
    successor = introduced.certificates.generated.next_ca  # type: ignore[union-attr]
    assert successor is not None
    assert ca_of(introduced) == old_ca
    assert bundle(introduced) == [old_ca, successor.parsed]
    assert pki.issued_by(serving(introduced), old_ca)
    secrets = secrets_of(s, introduced)
    assert "next.key" in values(secrets["mem-ca"])
    # Within the month, renewals are still signed by the old CA.
    still = decide_at(s, start + 29 * DAY, secrets)
    assert ca_of(still) == old_ca and still.certificates.generated.next_ca == successor  # type: ignore[union-attr]
    # A month on, the successor signs, and a new certificate comes from it; the old CA stays trusted.
    switched = decide_at(s, start + certificates.CA_OVERLAP + DAY, secrets_of(s, still))
    assert ca_of(switched) == successor.parsed
    assert switched.certificates.generated.next_ca is None  # type: ignore[union-attr]
    assert pki.issued_by(serving(switched), successor.parsed)
    assert bundle(switched) == [successor.parsed, old_ca]
    # Once the old CA expired, the bundle drops it.
    later = decide_at(s, old_ca.not_valid_after_utc + DAY, secrets_of(s, switched))
    assert bundle(later) == [successor.parsed]


def test_a_certificate_that_does_not_fit_is_replaced() -> None:
    s = store()
    first = decide_at(s, T0)
    secrets = secrets_of(s, first)
    foreign_ca = pki.make_ca("someone else", T0, 365 * DAY)
    foreign = pki.make_leaf(foreign_ca, "x", names.tls_dns_names(s), T0, T0 + 90 * DAY)
    wrong_names = pki.make_leaf(first.certificates.generated.ca, "x", ["elsewhere"], T0, T0 + 90 * DAY)  # type: ignore[union-attr]
    for pair in (foreign, wrong_names):
        replaced = {
            **secrets,
            "mem-tls": render_tls._secret(s, "mem-tls", {"tls.crt": pair.certificate, "tls.key": pair.key}),
        }
        decided = decide_at(s, T0 + DAY, replaced)
        assert decided.renewed == ["the serving certificate"]
        assert pki.issued_by(serving(decided), ca_of(first))
    # A key that is not the certificate's, or a CA that does not parse.
    mismatched = {
        **secrets,
        "mem-tls": render_tls._secret(
            s, "mem-tls", {"tls.crt": foreign.certificate, "tls.key": foreign_ca.key}
        ),
    }
    assert decide_at(s, T0 + DAY, mismatched).renewed == ["the serving certificate"]
    broken = {
        **secrets,
        "mem-ca": render_tls._secret(s, "mem-ca", {"tls.crt": "garbage", "tls.key": "garbage"}),
    }
    assert decide_at(s, T0 + DAY, broken).renewed == ["a new CA", "the serving certificate"]


def test_the_kept_minter_gives_the_same_certificate_until_the_secrets_show_it() -> None:
    minter = KeptMinter(keep=dt.timedelta(minutes=10))
    s = store()
    first = certificates.decide(s, {}, T0, minter)
    # The watch has not shown the Secrets yet: the same certificates, not new ones.
    again = certificates.decide(s, {}, T0 + dt.timedelta(minutes=1), minter)
    assert secrets_of(s, again) == secrets_of(s, first)
    much_later = certificates.decide(s, {}, T0 + dt.timedelta(hours=1), minter)
    assert secrets_of(s, much_later) != secrets_of(s, first)
    # Once a Secret holds it, a Secret deleted afterwards gets a new certificate (and the same CA).
    shown = secrets_of(s, much_later)
    certificates.decide(s, shown, T0 + dt.timedelta(hours=1, minutes=1), minter)
    without_leaf = {name: secret for name, secret in shown.items() if name != "mem-tls"}
    reissued = certificates.decide(s, without_leaf, T0 + dt.timedelta(hours=1, minutes=2), minter)
    assert reissued.renewed == ["the serving certificate"]
    assert serving(reissued) != serving(much_later) and ca_of(reissued) == ca_of(much_later)


def digest_view(name: str, **data: str) -> dict[str, Any]:
    """Someone else's Secret as the operator's cache keeps it: key digests, and ca.crt as it is."""
    view: dict[str, Any] = {
        "metadata": {"name": name, "namespace": "agents"},
        "digests": {k: hashlib.sha256(v.encode()).hexdigest() for k, v in data.items()},
    }
    if "ca.crt" in data:
        view["public"] = {"ca.crt": data["ca.crt"]}
    return view


def test_the_users_secret_is_served_as_it_is_and_checked() -> None:
    s = store(secretName="own-tls")
    missing = decide_at(s, T0)
    assert [p.reason for p in missing.problems] == ["TLSSecretNotFound"]
    partial = decide_at(s, T0, {"own-tls": digest_view("own-tls", **{"tls.crt": "c"})})
    assert [p.reason for p in partial.problems] == ["TLSSecretKeyMissing"]
    assert "tls.key" in partial.problems[0].message
    whole = decide_at(s, T0, {"own-tls": digest_view("own-tls", **{"tls.crt": "c", "tls.key": "k"})})
    assert whole.problems == [] and whole.certificates.generated is None
    assert whole.certificates.checksum
    renewed = decide_at(s, T0, {"own-tls": digest_view("own-tls", **{"tls.crt": "c2", "tls.key": "k"})})
    assert renewed.certificates.checksum != whole.certificates.checksum


def test_several_qdrant_nodes_need_a_ca_in_the_users_secret() -> None:
    spec = {"tls": {"mode": "enabled", "secretName": "own-tls"}, "vectorStore": {"replicas": 3}}
    s = MemoryStore.model_validate({"metadata": {"name": "mem", "namespace": "agents"}, "spec": spec})
    decided = decide_at(s, T0, {"own-tls": digest_view("own-tls", **{"tls.crt": "c", "tls.key": "k"})})
    assert [p.reason for p in decided.problems] == ["TLSSecretKeyMissing"]
    assert "ca.crt" in decided.problems[0].message


def test_cert_manager_issues_or_the_store_is_refused_without_it() -> None:
    s = store(issuerRef={"name": "ca-issuer"})
    absent = decide_at(s, T0, cert_manager=False)
    assert [p.reason for p in absent.problems] == ["CertManagerNotInstalled"]
    waiting = decide_at(s, T0)
    assert waiting.problems == [] and waiting.certificates.checksum is None
    assert waiting.condition is not None and waiting.condition.reason == "Issuing"
    issued = {"mem-tls": {"metadata": {"name": "mem-tls"}, "data": {"tls.crt": "Yw==", "tls.key": "aw=="}}}
    done = decide_at(s, T0, issued)
    assert done.condition is not None and done.condition.reason == "Issued"
    assert done.certificates.checksum and done.certificates.generated is None


def test_mutual_tls_gives_the_jobs_a_client_certificate_of_the_stores_ca() -> None:
    s = store(clientCaSecret="clients-ca", secretName="own-tls")
    own = {"own-tls": digest_view("own-tls", **{"tls.crt": "c", "tls.key": "k", "ca.crt": "a"})}
    missing = decide_at(s, T0, own)
    assert [p.reason for p in missing.problems] == ["ClientCASecretNotFound"]
    given = {**own, "clients-ca": digest_view("clients-ca", **{"ca.crt": "clients"})}
    decided = decide_at(s, T0, given)
    assert decided.problems == []
    generated = decided.certificates.generated
    assert generated is not None and generated.serving is None and generated.jobs_client is not None
    client = generated.jobs_client.parsed
    assert pki.issued_by(client, generated.ca.parsed)
    usages = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {u._name for u in usages} == {"clientAuth"}
    assert set(secrets_of(s, decided)) == {"mem-ca", "mem-jobs-tls"}
    other_ca = {**given, "clients-ca": digest_view("clients-ca", **{"ca.crt": "other"})}
    assert decide_at(s, T0, other_ca).certificates.client_checksum != decided.certificates.client_checksum
    # The served certificate did not change: Qdrant does not roll for a new client CA.
    assert decide_at(s, T0, other_ca).certificates.checksum == decided.certificates.checksum


def tls_body(**tls: Any) -> dict[str, Any]:
    return {
        "apiVersion": "memory-operator.io/v1alpha1",
        "kind": "MemoryStore",
        "metadata": {"name": "mem", "namespace": "agents", "uid": "uid-mem", "generation": 1},
        "spec": {"tls": {"mode": "enabled", **tls}},
    }


KEYS = Credentials("rw-key", "ro-key", "qdrant-key")


def test_a_reconcile_applies_the_certificates_and_says_https() -> None:
    minter = KeptMinter()
    decision = decide.decide(
        Snapshot(body=tls_body()), RenderSettings(), KEYS, "2026-01-01T00:00:00Z", minter
    )
    applied = {(m["kind"], m["metadata"]["name"]): m for m in decision.apply}
    assert ("Secret", "mem-ca") in applied and ("Secret", "mem-tls") in applied
    assert decision.status is not None and decision.status.endpoints is not None
    assert decision.status.endpoints.server == "https://mem-server.agents.svc:8765"
    assert decision.status.endpoints.qdrant == "https://mem-qdrant.agents.svc:6333"
    ready = next(c for c in decision.status.conditions if c.type == certificates.CONDITION)
    assert ready.status == "True" and ready.reason == "Generated"
    checksum = applied[("Deployment", "mem-server")]["spec"]["template"]["metadata"]["annotations"]
    assert checksum[render_tls.CHECKSUM]


def test_a_store_naming_an_issuer_is_refused_without_cert_manager() -> None:
    body = tls_body(issuerRef={"name": "ca-issuer"})
    decision = decide.decide(
        Snapshot(body=body), RenderSettings(cert_manager=False), KEYS, "2026-01-01T00:00:00Z"
    )
    assert decision.phase == "Failed" and decision.apply == []
    assert decision.status is not None
    ready = next(c for c in decision.status.conditions if c.type == "Ready")
    assert "CertManagerNotInstalled" in ready.message
    served = decide.decide(Snapshot(body=body), RenderSettings(), KEYS, "2026-01-01T00:00:00Z")
    assert ("Certificate", "mem-tls") in {(m["kind"], m["metadata"]["name"]) for m in served.apply}


@pytest.mark.parametrize(
    "spec", [{}, {"tls": {"mode": "disabled"}}, {"tls": {"mode": "disabled", "secretName": "x"}}]
)
def test_tls_disabled_changes_no_pod_template(spec: dict[str, Any]) -> None:
    """An operator upgrade must roll no pod of a store without TLS."""
    body = {**tls_body(), "spec": spec}
    plain = {**tls_body(), "spec": {}}
    now = "2026-01-01T00:00:00Z"
    assert (
        decide.decide(Snapshot(body=body), RenderSettings(), KEYS, now).apply
        == decide.decide(Snapshot(body=plain), RenderSettings(), KEYS, now).apply
    )


def client_decision(store_spec: dict[str, Any], ca_bundle: str | None) -> dict[str, str]:
    from memory_operator.controller import clients

    client = {
        "apiVersion": "memory-operator.io/v1alpha1",
        "kind": "MemoryClient",
        "metadata": {"name": "app", "namespace": "agents", "uid": "uid-app", "generation": 1},
        "spec": {"store": "mem", "scopes": {"userIds": ["*"]}},
    }
    store_body = {**tls_body(), "spec": store_spec}
    decision = clients.decide_client(
        client,
        store=store_body,
        secret=None,
        clients_secret=None,
        fresh_key="k" * 43,
        now="2026-01-01T00:00:00Z",
        ca_bundle=ca_bundle,
    )
    assert decision.secret is not None
    return values(decision.secret)


def test_a_memory_clients_secret_carries_https_urls_and_the_ca_bundle() -> None:
    bundle = pki.make_ca("ca", T0, DAY).certificate
    secured = client_decision({"tls": {"mode": "enabled"}}, bundle)
    assert secured["MEMORY_URL"] == "https://mem-server.agents.svc:8765"
    assert secured["MEMORY_MCP_URL"].startswith("https://mem-server.agents.svc:8765/mcp/app/http/")
    assert secured["MEMORY_CA_CERT"] == bundle
    # Without TLS the Secret is what it always was: no new key, plain URLs.
    plain = client_decision({}, None)
    assert set(plain) == {"MEMORY_API_KEY", "MEMORY_URL", "MEMORY_MCP_URL"}
    assert plain["MEMORY_URL"].startswith("http://")
    assert "MEMORY_CA_CERT" not in client_decision({"tls": {"mode": "disabled"}}, bundle)


def test_the_ca_bundle_comes_from_the_operators_secret_or_the_public_part_of_the_users() -> None:
    bundle = "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"
    encoded = base64.b64encode(bundle.encode()).decode()
    assert certificates.ca_bundle({"data": {"ca.crt": encoded}}) == bundle
    assert certificates.ca_bundle({"digests": {"ca.crt": "d"}, "public": {"ca.crt": encoded}}) == bundle
    assert certificates.ca_bundle({"digests": {"tls.crt": "d"}}) is None
    assert certificates.ca_bundle(None) is None


def test_the_cache_keeps_a_users_ca_bundle_but_never_a_key() -> None:
    from memory_operator.controller.cache import secret_view

    user = {
        "metadata": {"name": "own-tls", "namespace": "agents", "labels": {}},
        "data": {"tls.crt": "Yw==", "tls.key": "a2V5", "ca.crt": "Y2E="},
    }
    view = secret_view(user)
    assert view["public"] == {"ca.crt": "Y2E="}
    assert "data" not in view and "a2V5" not in str(view)
