"""TLS on the real control plane: a store with `tls.mode: enabled` becomes Ready with the certificates the
operator generates and keeps (a converged store writes nothing), a lost certificate is issued again and
rolls the pods; with cert-manager (its CRD installed while the operator runs, the test issuing as
cert-manager would) the operator asks for a Certificate and serves what is issued, and drops it when the
store goes back to its own CA."""

from __future__ import annotations

import base64
import datetime as dt
import time
from typing import Any

from cryptography import x509

from e2e.cluster import audit_writes, condition, store, wait_for
from e2e.conftest import Cluster
from e2e.test_store import wait_phase
from memory_operator import pki
from memory_operator.render import tls as render_tls

CRD = "certificates.cert-manager.io"
CERTIFICATES = "/apis/cert-manager.io/v1/namespaces/{namespace}/certificates"


def decoded(secret: dict[str, Any], key: str) -> str:
    return base64.b64decode(secret["data"][key]).decode()


def template(cluster: Cluster, kind: str, namespace: str, name: str) -> dict[str, Any]:
    workload = cluster.client.get(kind, namespace, name)
    assert workload is not None, f"{kind} {name}"
    return dict(workload["spec"]["template"])


def checksum(cluster: Cluster, kind: str, namespace: str, name: str) -> str | None:
    return (template(cluster, kind, namespace, name)["metadata"].get("annotations") or {}).get(
        render_tls.CHECKSUM
    )


def test_a_store_with_tls_becomes_ready_keeps_its_certificates_and_rolls_on_a_new_one(
    cluster: Cluster,
) -> None:
    ns = cluster.client.namespace("tls-generated")
    cluster.client.create(store(ns, "secure", tls={"mode": "enabled"}, server={"replicas": 2}))
    ready = wait_phase(cluster, ns, "secure", "Ready", timeout=90)
    assert ready["status"]["endpoints"]["server"] == f"https://secure-server.{ns}.svc:8765"
    assert ready["status"]["endpoints"]["qdrant"] == f"https://secure-qdrant.{ns}.svc:6333"
    assert condition(ready, "CertificatesReady")["reason"] == "Generated"

    ca_secret = cluster.client.get("Secret", ns, "secure-ca")
    serving = cluster.client.get("Secret", ns, "secure-tls")
    assert ca_secret is not None and serving is not None
    ca = x509.load_pem_x509_certificate(decoded(ca_secret, "tls.crt").encode())
    leaf = x509.load_pem_x509_certificate(decoded(serving, "tls.crt").encode())
    assert pki.issued_by(leaf, ca)
    assert f"secure-server.{ns}.svc" in pki.dns_names(leaf)
    assert f"*.secure-qdrant-headless.{ns}.svc" in pki.dns_names(leaf)
    assert decoded(serving, "ca.crt") == decoded(ca_secret, "ca.crt")
    # The CA's key stays with the operator: no pod mounts its Secret whole.
    for pod in cluster.client.list("Pod", ns):
        for volume in pod["spec"].get("volumes") or []:
            if (volume.get("secret") or {}).get("secretName") == "secure-ca":
                assert volume["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]

    server = template(cluster, "Deployment", ns, "secure-server")["spec"]["containers"][0]
    assert server["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    qdrant = template(cluster, "StatefulSet", ns, "secure-qdrant")["spec"]["containers"][0]
    assert {"name": "QDRANT__SERVICE__ENABLE_TLS", "value": "true"} in qdrant["env"]
    before = checksum(cluster, "Deployment", ns, "secure-server")
    assert before and before == checksum(cluster, "StatefulSet", ns, "secure-qdrant")

    # Converged: the certificates are kept, nothing is written again.
    time.sleep(2)
    since = time.time()
    time.sleep(7)
    writes = audit_writes(cluster.plane, ns, since)
    assert writes == [], [(e["requestURI"], e.get("requestObject")) for e in writes]

    # A lost certificate is issued again by the same CA, and the pods that serve it roll.
    assert cluster.client.delete("Secret", ns, "secure-tls") == 200
    renewed = wait_for(
        lambda: (s := cluster.client.get("Secret", ns, "secure-tls")) and s["data"] != serving["data"] and s,
        "a new certificate",
    )
    new_leaf = x509.load_pem_x509_certificate(decoded(renewed, "tls.crt").encode())
    assert pki.issued_by(new_leaf, ca) and new_leaf.serial_number != leaf.serial_number
    wait_for(lambda: checksum(cluster, "Deployment", ns, "secure-server") not in (None, before), "a roll")
    assert checksum(cluster, "StatefulSet", ns, "secure-qdrant") != before
    assert (cluster.client.get("Secret", ns, "secure-ca") or {}).get("data") == ca_secret["data"]
    # The server rolls a pod at a time, a new one ready before an old one goes.
    strategy = (cluster.client.get("Deployment", ns, "secure-server") or {})["spec"]["strategy"]
    assert strategy["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    wait_phase(cluster, ns, "secure", "Ready", timeout=90)


def certificate_crd() -> dict[str, Any]:
    """cert-manager's Certificate kind, as far as the operator needs it (its controller is the test)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD},
        "spec": {
            "group": "cert-manager.io",
            "scope": "Namespaced",
            "names": {"plural": "certificates", "singular": "certificate", "kind": "Certificate"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }


def certificates(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    response = cluster.client.http.get(CERTIFICATES.format(namespace=namespace))
    if response.status_code == 404:
        return []
    response.raise_for_status()
    return list(response.json()["items"])


def issue(cluster: Cluster, certificate: dict[str, Any]) -> None:
    """What cert-manager does for a Certificate: its Secret, with the template's labels."""
    spec = certificate["spec"]
    now = dt.datetime.now(dt.UTC)
    ca = pki.make_ca("an issuer", now, dt.timedelta(days=30))
    leaf = pki.make_leaf(ca, spec["commonName"], spec["dnsNames"], now, now + dt.timedelta(days=10))
    values = {"tls.crt": leaf.certificate, "tls.key": leaf.key, "ca.crt": ca.certificate}
    cluster.client.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {
                "name": spec["secretName"],
                "namespace": certificate["metadata"]["namespace"],
                "labels": spec["secretTemplate"]["labels"],
                "annotations": {"cert-manager.io/certificate-name": certificate["metadata"]["name"]},
            },
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
        }
    )


def test_cert_manager_issues_once_installed_and_its_certificate_goes_with_the_issuer(
    cluster: Cluster,
) -> None:
    ns = cluster.client.namespace("tls-cert-manager")
    issuer = {"mode": "enabled", "issuerRef": {"name": "ca-issuer", "kind": "ClusterIssuer"}}
    cluster.client.create(store(ns, "issued", tls=issuer))
    refused = wait_phase(cluster, ns, "issued", "Failed")
    assert "CertManagerNotInstalled" in condition(refused, "Ready")["message"]

    # cert-manager arrives while the operator runs: the watch of its CRD tells.
    response = cluster.client.http.post(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=certificate_crd()
    )
    assert response.status_code in (201, 409), response.text
    certificate = wait_for(lambda: certificates(cluster, ns), "the Certificate", timeout=90)[0]
    assert certificate["metadata"]["name"] == "issued-tls"
    assert certificate["spec"]["issuerRef"] == {
        "name": "ca-issuer",
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }
    assert certificate["metadata"]["ownerReferences"][0]["name"] == "issued"
    waiting = wait_for(
        lambda: (
            (b := cluster.client.get("MemoryStore", ns, "issued"))
            and condition(b, "CertificatesReady").get("reason") == "Issuing"
            and b
        ),
        "the store waiting for cert-manager",
    )
    assert waiting["status"]["phase"] != "Failed"

    issue(cluster, certificate)
    ready = wait_phase(cluster, ns, "issued", "Ready", timeout=90)
    assert condition(ready, "CertificatesReady")["reason"] == "Issued"
    assert checksum(cluster, "StatefulSet", ns, "issued-qdrant")
    assert cluster.client.get("Secret", ns, "issued-ca") is None, "no CA of the operator's own"

    # Back to the operator's own CA: the Certificate goes, the operator's certificate takes the Secret.
    cluster.client.patch("MemoryStore", ns, "issued", {"spec": {"tls": {"issuerRef": None}}})
    wait_for(lambda: not certificates(cluster, ns), "the Certificate pruned")
    own_ca = wait_for(lambda: cluster.client.get("Secret", ns, "issued-ca"), "the operator's CA")

    def served_by_own_ca() -> bool:
        secret = cluster.client.get("Secret", ns, "issued-tls") or {}
        leaf = x509.load_pem_x509_certificate(decoded(secret, "tls.crt").encode())
        return pki.issued_by(leaf, x509.load_pem_x509_certificate(decoded(own_ca, "tls.crt").encode()))

    wait_for(served_by_own_ca, "the operator's certificate")
    generated = wait_phase(cluster, ns, "issued", "Ready", timeout=90)
    wait_for(
        lambda: (
            condition(cluster.client.get("MemoryStore", ns, "issued"), "CertificatesReady").get("reason")
            == "Generated"
        ),
        "the generated certificate reported",
    )
    assert generated["status"]["endpoints"]["server"].startswith("https://")
