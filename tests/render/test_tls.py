"""What `spec.tls` renders, per mode and certificate source: valid for every supported Kubernetes
version, HTTPS everywhere it is on, and nothing at all when it is off."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

import kubernetes_validate
import pytest

from memory_operator.api.store import MemoryStore
from memory_operator.controller import certificates
from memory_operator.render import Directives, names, render_store
from memory_operator.render import tls as render_tls
from render.helpers import CREDENTIALS, POLICIES, SETTINGS, env_of, make_store, one, pod_templates, render
from render.test_kubernetes_schemas import supported_versions

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
CANARY = {"monitoring": {"canary": {}}}
BACKUP = {"backup": {"destination": {"pvc": {}}}}
DIGESTS = {"tls.crt": "1", "tls.key": "2", "ca.crt": "3"}

# name -> spec: each certificate source, alone and with several Qdrant nodes, mutual TLS.
TLS_SPECS: dict[str, dict[str, Any]] = {
    "generated": {"tls": {"mode": "enabled"}, **CANARY, **BACKUP},
    "generated-distributed": {
        "tls": {"mode": "enabled"},
        "vectorStore": {"replicas": 3, "collection": {"replicationFactor": 2}},
        "server": {"replicas": 2},
        **BACKUP,
    },
    "user-secret": {"tls": {"mode": "enabled", "secretName": "own-tls"}, **CANARY},
    "cert-manager": {"tls": {"mode": "enabled", "issuerRef": {"name": "ca-issuer", "kind": "ClusterIssuer"}}},
    "mutual": {"tls": {"mode": "enabled", "clientCaSecret": "clients-ca"}, **CANARY},
}
SECRETS = {
    "own-tls": {"metadata": {"name": "own-tls"}, "digests": DIGESTS},
    "clients-ca": {"metadata": {"name": "clients-ca"}, "digests": {"ca.crt": "4"}},
}


def decided(store: MemoryStore) -> certificates.Tls:
    return certificates.decide(store, SECRETS, T0, certificates.FreshMinter())


@functools.cache
def rendered(name: str) -> list[dict[str, Any]]:
    store = make_store(TLS_SPECS[name])
    directives = Directives(
        collection=True,
        backups=("mem-1",) if store.spec.backup else (),
        certificates=decided(store).certificates,
    )
    return render_store(store, POLICIES, SETTINGS, CREDENTIALS, directives)


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    return next(iter(pod_templates(manifest)))["spec"]["containers"][0]


def annotations(manifest: dict[str, Any]) -> dict[str, str]:
    return next(iter(pod_templates(manifest)))["metadata"].get("annotations") or {}


@pytest.mark.parametrize("version", supported_versions())
def test_every_mode_renders_objects_valid_for_kubernetes(version: str) -> None:
    errors = []
    for name in sorted(TLS_SPECS):
        for manifest in rendered(name):
            if manifest["kind"] == "Certificate":
                continue  # cert-manager's kind: not in Kubernetes' schemas (test_the_certificate_*)
            try:
                kubernetes_validate.validate(manifest, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                errors.append(f"{name}/{manifest['kind']}/{manifest['metadata']['name']}: {error.message}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize(
    "spec", [{"tls": {"mode": "disabled"}}, {"tls": {"mode": "disabled", "secretName": "x"}}]
)
def test_disabled_renders_exactly_what_no_tls_renders(spec: dict[str, Any]) -> None:
    assert render(spec, POLICIES) == render({}, POLICIES)
    assert render({**spec, **CANARY, **BACKUP}, POLICIES) == render({**CANARY, **BACKUP}, POLICIES)


def test_qdrant_serves_tls_and_its_peers_talk_over_it() -> None:
    single = one(rendered("generated"), "StatefulSet")
    variables = env_of(container(single))
    assert variables["QDRANT__SERVICE__ENABLE_TLS"] == "true"
    assert variables["QDRANT__TLS__CERT"] == "/qdrant/tls/tls.crt"
    assert variables["QDRANT__TLS__KEY"] == "/qdrant/tls/tls.key"
    assert "QDRANT__CLUSTER__P2P__ENABLE_TLS" not in variables
    volumes = next(iter(pod_templates(single)))["spec"]["volumes"]
    assert {"name": "tls", "secret": {"secretName": "mem-tls", "defaultMode": 0o440}} in volumes
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container(single)[probe]["httpGet"]["scheme"] == "HTTPS"
    cluster = one(rendered("generated-distributed"), "StatefulSet")
    variables = env_of(container(cluster))
    assert variables["QDRANT__CLUSTER__P2P__ENABLE_TLS"] == "true"
    assert variables["QDRANT__TLS__CA_CERT"] == "/qdrant/tls/ca.crt"
    script = container(cluster)["command"][-1]
    assert 'self="https://' in script and 'founder="https://' in script and "http://" not in script


def test_the_server_serves_https_and_verifies_qdrant() -> None:
    server = container(one(rendered("generated"), "Deployment"))
    variables = env_of(server)
    assert variables["MEMORY_QDRANT_URL"] == "https://mem-qdrant.agents.svc:6333"
    assert variables["MEMORY_TLS_CERT_FILE"] == "/etc/memory-operator-tls/tls.crt"
    assert variables["MEMORY_TLS_KEY_FILE"] == "/etc/memory-operator-tls/tls.key"
    assert variables["MEMORY_TLS_CA_FILE"] == "/etc/memory-operator-tls/ca.crt"
    assert "MEMORY_TLS_CLIENT_CA_FILE" not in variables
    assert server["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http", "scheme": "HTTPS"}


def test_mutual_tls_demands_client_certificates_and_probes_a_port_of_their_own() -> None:
    deployment = one(rendered("mutual"), "Deployment")
    server = container(deployment)
    variables = env_of(server)
    assert variables["MEMORY_TLS_CLIENT_CA_FILE"] == (
        "/etc/memory-operator-client-ca/ca.crt,/etc/memory-operator-client-ca/store/ca.crt"
    )
    assert variables["MEMORY_HEALTH_PORT"] == "8766"
    assert {"name": "health", "containerPort": 8766, "protocol": "TCP"} in server["ports"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert server[probe]["httpGet"]["port"] == "health"
        assert "scheme" not in server[probe]["httpGet"]
    volumes = {v["name"]: v for v in next(iter(pod_templates(deployment)))["spec"]["volumes"]}
    assert volumes["client-ca"]["secret"]["secretName"] == "clients-ca"
    # The store's CA (its certificate only, never its key) signs the jobs' client certificate.
    assert volumes["store-ca"]["secret"] == {
        "secretName": "mem-ca",
        "defaultMode": 0o440,
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
    }
    canary = container(one(rendered("mutual"), "CronJob", "mem-canary"))
    assert env_of(canary)["MEMORY_TLS_CLIENT_CERT_FILE"] == "/etc/memory-operator-client-tls/tls.crt"
    secrets = {m["metadata"]["name"] for m in rendered("mutual") if m["kind"] == "Secret"}
    assert {"mem-ca", "mem-tls", "mem-jobs-tls"} <= secrets


def test_jobs_verify_against_the_ca_bundle_and_never_see_a_key() -> None:
    for name in ("generated", "generated-distributed", "user-secret", "mutual"):
        for manifest in rendered(name):
            if manifest["kind"] not in ("Job", "CronJob"):
                continue
            template = next(iter(pod_templates(manifest)))
            variables = env_of(template["spec"]["containers"][0])
            assert variables["MEMORY_TLS_CA_FILE"] == "/etc/memory-operator-tls/ca.crt", manifest["metadata"]
            ca = next(v for v in template["spec"]["volumes"] if v["name"] == "tls-ca")
            secret = "own-tls" if name == "user-secret" else "mem-tls"
            assert ca["secret"]["secretName"] == secret
            assert ca["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]
            # A user's Secret may hold no CA: the jobs then trust the system's CAs.
            assert ca["secret"]["optional"] is True
            for url in ("MEMORY_QDRANT_URL", "MEMORY_SERVER_URL", "MEMORY_QDRANT_PEERS"):
                assert "http://" not in str(variables.get(url, "")), (manifest["metadata"]["name"], url)


def test_the_certificate_rolls_qdrant_and_the_server_but_no_job() -> None:
    store = make_store(TLS_SPECS["generated"])
    first = decided(store).certificates
    renewed = decided(store).certificates
    assert first.checksum != renewed.checksum

    def render_with(certs: render_tls.Certificates) -> dict[tuple[str, str], dict[str, Any]]:
        directives = Directives(collection=True, certificates=certs)
        return {
            (m["kind"], m["metadata"]["name"]): m
            for m in render_store(store, POLICIES, SETTINGS, CREDENTIALS, directives)
        }

    before, after = render_with(first), render_with(renewed)
    for key in (("StatefulSet", "mem-qdrant"), ("Deployment", "mem-server")):
        assert annotations(before[key])[render_tls.CHECKSUM] != annotations(after[key])[render_tls.CHECKSUM]
    for key, manifest in before.items():
        if key[0] in ("Job", "CronJob"):
            assert manifest == after[key], key
    # The server's Deployment rolls without downtime: a new pod is ready before an old one stops.
    strategy = before[("Deployment", "mem-server")]["spec"]["strategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


def test_the_certificate_asks_cert_manager_for_every_name_with_the_stores_labels() -> None:
    store = make_store(TLS_SPECS["cert-manager"])
    certificate = one(rendered("cert-manager"), "Certificate")
    assert certificate["apiVersion"] == "cert-manager.io/v1"
    spec = certificate["spec"]
    assert spec["secretName"] == names.tls_secret_name(store) == "mem-tls"
    assert spec["dnsNames"] == names.tls_dns_names(store)
    assert spec["issuerRef"] == {"name": "ca-issuer", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    assert "client auth" in spec["usages"] and "server auth" in spec["usages"]
    assert spec["secretTemplate"]["labels"]["memory-operator.io/store"] == "mem"
    assert spec["secretTemplate"]["labels"]["app.kubernetes.io/managed-by"] == "memory-operator"
    # The operator generates no certificate of its own then.
    assert {m["metadata"]["name"] for m in rendered("cert-manager") if m["kind"] == "Secret"} == {
        "mem-qdrant-key",
        "mem-api-keys",
    }
    # No annotation until cert-manager issued the certificate.
    assert render_tls.CHECKSUM not in annotations(one(rendered("cert-manager"), "StatefulSet"))


def test_without_credentials_no_certificate_is_rendered() -> None:
    """`memory-operator render --no-secrets`: no Secret, generated or not."""
    store = make_store(TLS_SPECS["generated"])
    directives = Directives(collection=True, certificates=decided(store).certificates)
    manifests = render_store(store, POLICIES, SETTINGS, None, directives)
    assert [m for m in manifests if m["kind"] == "Secret"] == []
