"""A throwaway Kubernetes control plane on 127.0.0.1 for the end-to-end tests.

etcd, kube-apiserver (RBAC, Pod Security admission, an audit log), kube-controller-manager (garbage
collection and the workload controllers), kube-scheduler, and kwok playing one node whose pods become
Running and Ready, and stop (Failed) before they go when deleted. The programs are built from their Go
modules by scripts/build-control-plane.sh into .tools/bin/. A small provisioner thread stands in for a
storage driver: it binds every claim of the default StorageClass to a new volume and grows volumes when
their claims grow.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".tools" / "bin"
KWOK_STAGES = ROOT / ".tools" / "kwok" / "stages.yaml"
PROGRAMS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
SERVICE_CIDR = "10.96.0.0/16"
NODE_NAME = "kwok-node-0"
STORAGE_CLASS = "standard"
PROVISIONER = "memory-operator.io/test-provisioner"
START_TIMEOUT = 90.0

# Reads by the cluster's own components and by the tests' admin are left out: the log is for counting
# what the operator (a service account outside kube-system) asks of the server.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "None", "resources": [{"group": "coordination.k8s.io", "resources": ["leases"]}]},
        {"level": "None", "resources": [{"group": "", "resources": ["events"]}], "verbs": ["get", "list"]},
        {
            "level": "None",
            "verbs": ["get", "list", "watch"],
            "userGroups": ["system:masters", "system:nodes", "system:serviceaccounts:kube-system"],
        },
        {
            "level": "None",
            "verbs": ["get", "list", "watch"],
            "users": ["system:kube-controller-manager", "system:kube-scheduler", "system:apiserver"],
        },
        # Status writes with what they wrote: a test that finds one can say what changed.
        {
            "level": "Request",
            "verbs": ["patch", "update"],
            "resources": [
                {
                    "group": "memory-operator.io",
                    "resources": ["memorystores/status", "memorypolicies/status", "memorybackups/status"],
                }
            ],
        },
        {"level": "Metadata"},
    ],
}


class ControlPlaneError(RuntimeError):
    """The control plane could not be built or started: the e2e suite fails, it never skips."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def missing_programs() -> list[str]:
    missing = [name for name in PROGRAMS if not (BIN / name).is_file()]
    if not KWOK_STAGES.is_file():
        missing.append(str(KWOK_STAGES.relative_to(ROOT)))
    return missing


@dataclass
class Pki:
    """A CA, the apiserver's serving certificate, client certificates and the service-account keys."""

    directory: Path
    ca_key: rsa.RSAPrivateKey = field(init=False)
    ca_cert: x509.Certificate = field(init=False)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ca_key = _key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "memory-operator-test-ca")])
        self.ca_cert = (
            _builder(name, name, self.ca_key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.ca_key, hashes.SHA256())
        )
        self._write("ca.crt", self.ca_cert.public_bytes(serialization.Encoding.PEM))
        self._write("ca.key", _pem_key(self.ca_key))
        sa = _key()
        self._write("sa.key", _pem_key(sa))
        self._write(
            "sa.pub",
            sa.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        )

    def path(self, name: str) -> Path:
        return self.directory / name

    @property
    def ca_pem(self) -> bytes:
        return self.ca_cert.public_bytes(serialization.Encoding.PEM)

    def serving(self, name: str, ips: list[str], dns: list[str]) -> tuple[Path, Path]:
        sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        sans += [x509.DNSName(d) for d in dns]
        return self._leaf(name, name, None, x509.SubjectAlternativeName(sans), server=True)

    def client(self, name: str, user: str, group: str | None) -> tuple[Path, Path]:
        return self._leaf(name, user, group, None, server=False)

    def _leaf(
        self, name: str, cn: str, group: str | None, sans: x509.SubjectAlternativeName | None, server: bool
    ) -> tuple[Path, Path]:
        key = _key()
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        if group:
            attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, group))
        usage = (
            x509.oid.ExtendedKeyUsageOID.SERVER_AUTH if server else x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH
        )
        builder = _builder(x509.Name(attributes), self.ca_cert.subject, key).add_extension(
            x509.ExtendedKeyUsage([usage]), critical=False
        )
        if sans is not None:
            builder = builder.add_extension(sans, critical=False)
        cert = builder.sign(self.ca_key, hashes.SHA256())
        return (
            self._write(f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM)),
            self._write(f"{name}.key", _pem_key(key)),
        )

    def _write(self, name: str, data: bytes) -> Path:
        path = self.directory / name
        path.write_bytes(data)
        path.chmod(0o600)
        return path


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _builder(subject: x509.Name, issuer: x509.Name, key: rsa.RSAPrivateKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
    )


def kubeconfig(server: str, ca: bytes, user: dict[str, Any], name: str = "test") -> str:
    import base64

    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": name,
                    "cluster": {
                        "server": server,
                        "certificate-authority-data": base64.b64encode(ca).decode(),
                    },
                }
            ],
            "users": [{"name": name, "user": user}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
        }
    )


class ControlPlane:
    """Starts the programs in order, waits for each to answer, stops all of them (even half-started)."""

    def __init__(self, directory: Path, workloads: bool = True, node_pods: int = 1000) -> None:
        """`workloads=False` starts etcd and the apiserver only: an API, no controllers, no node.
        `node_pods`: how many pods the fake node takes."""
        self.directory = directory
        self.workloads = workloads
        self.node_pods = node_pods
        self.logs = directory / "logs"
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.url = ""
        self.admin_kubeconfig = directory / "admin.kubeconfig"
        self.audit_log = directory / "audit.log"
        self.pki: Pki | None = None
        self._provisioner: Provisioner | None = None

    # ----- lifecycle

    def start(self) -> ControlPlane:
        missing = missing_programs()
        if missing:
            raise ControlPlaneError(
                f"missing {', '.join(missing)} in {BIN}: run scripts/build-control-plane.sh (needs Go)"
            )
        self.logs.mkdir(parents=True, exist_ok=True)
        try:
            self.pki = Pki(self.directory / "pki")
            etcd_url = self._start_etcd()
            self._start_apiserver(etcd_url)
            if self.workloads:
                self._start_components()
                self._start_kwok()
                self._prepare_cluster()
                self._provisioner = Provisioner(self).start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._provisioner is not None:
            self._provisioner.stop()
        # A throwaway cluster: a short grace for each program, in reverse order of start, then a kill.
        for _name, process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(3)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
        self.processes.clear()

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
        env.pop("KUBECONFIG", None)
        process = subprocess.Popen(
            [str(BIN / name.split(":")[0]), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.directory,
            start_new_session=True,
        )
        log.close()
        self.processes.append((name, process))
        return process

    def _wait(self, name: str, process: subprocess.Popen[bytes], ready: Any) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ControlPlaneError(f"{name} exited with {process.returncode}:\n{self.log_tail(name)}")
            with contextlib.suppress(OSError, urllib.error.URLError, ssl.SSLError):
                if ready():
                    return
            time.sleep(0.2)
        raise ControlPlaneError(
            f"{name} did not become ready in {START_TIMEOUT:.0f}s:\n{self.log_tail(name)}"
        )

    def log_tail(self, name: str, size: int = 4000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-size:] if path.is_file() else ""

    # ----- the programs

    def _start_etcd(self) -> str:
        client, peer = free_port(), free_port()
        url = f"http://127.0.0.1:{client}"
        process = self._spawn(
            "etcd",
            [
                "--name=test",
                f"--data-dir={self.directory / 'etcd'}",
                f"--listen-client-urls={url}",
                f"--advertise-client-urls={url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=test=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._wait("etcd", process, lambda: _http_ok(f"{url}/health"))
        return url

    def _start_apiserver(self, etcd_url: str) -> None:
        assert self.pki is not None
        pki = self.pki
        port = free_port()
        self.url = f"https://127.0.0.1:{port}"
        cert, key = pki.serving(
            "apiserver",
            ["127.0.0.1", str(next(ipaddress.ip_network(SERVICE_CIDR).hosts()))],
            ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
        )
        admin_cert, admin_key = pki.client("admin", "test-admin", "system:masters")
        policy = self.directory / "audit-policy.yaml"
        policy.write_text(yaml.safe_dump(AUDIT_POLICY))
        process = self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--tls-cert-file={cert}",
                f"--tls-private-key-file={key}",
                f"--client-ca-file={pki.path('ca.crt')}",
                f"--cert-dir={self.directory / 'apiserver-certs'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki.path('sa.pub')}",
                f"--service-account-signing-key-file={pki.path('sa.key')}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                f"--audit-policy-file={policy}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-maxsize=0",
                "--profiling=false",
                "--v=1",
            ],
        )
        self.admin_kubeconfig.write_text(
            kubeconfig(
                self.url,
                pki.ca_pem,
                {"client-certificate": str(admin_cert), "client-key": str(admin_key)},
            )
        )
        self._ssl = self.admin_ssl_context()
        self._wait("kube-apiserver", process, lambda: self.request("GET", "/readyz") == "ok")

    def admin_ssl_context(self) -> ssl.SSLContext:
        """Trusts the cluster's CA and presents the administrator's client certificate."""
        assert self.pki is not None
        context = ssl.create_default_context(cafile=str(self.pki.path("ca.crt")))
        context.load_cert_chain(str(self.pki.path("admin.crt")), str(self.pki.path("admin.key")))
        return context

    def _start_components(self) -> None:
        assert self.pki is not None
        pki = self.pki
        controllers = self._component_kubeconfig("kube-controller-manager", "system:kube-controller-manager")
        process = self._spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={controllers}",
                f"--authentication-kubeconfig={controllers}",
                f"--authorization-kubeconfig={controllers}",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--controllers=*",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={pki.path('sa.key')}",
                f"--root-ca-file={pki.path('ca.crt')}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--leader-elect=false",
                # Jobs and CronJobs in the tests finish in seconds: no need to wait for the default sync.
                "--concurrent-gc-syncs=5",
                "--v=1",
            ],
        )
        scheduler = self._component_kubeconfig("kube-scheduler", "system:kube-scheduler")
        scheduler_process = self._spawn(
            "kube-scheduler",
            [
                f"--kubeconfig={scheduler}",
                f"--authentication-kubeconfig={scheduler}",
                f"--authorization-kubeconfig={scheduler}",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--leader-elect=false",
                # A pod whose retry event the queue missed waits for the next flush (every 30 s), not
                # for the default five minutes.
                "--pod-max-in-unschedulable-pods-duration=1s",
                "--v=1",
            ],
        )
        # Both are up once their ServiceAccount work shows: the default ServiceAccount of a namespace.
        self._wait(
            "kube-controller-manager",
            process,
            lambda: self.get("/api/v1/namespaces/default/serviceaccounts/default") is not None,
        )
        self._wait("kube-scheduler", scheduler_process, lambda: scheduler_process.poll() is None)

    def _component_kubeconfig(self, name: str, user: str) -> Path:
        assert self.pki is not None
        cert, key = self.pki.client(name, user, None)
        path = self.directory / f"{name}.kubeconfig"
        path.write_text(
            kubeconfig(self.url, self.pki.ca_pem, {"client-certificate": str(cert), "client-key": str(key)})
        )
        return path

    def _start_kwok(self) -> None:
        assert self.pki is not None
        # kwok manages nodes and their pods with its own admin identity, kept out of the audit log's reads.
        cert, key = self.pki.client("kwok", "kwok", "system:masters")
        config = self.directory / "kwok.kubeconfig"
        config.write_text(
            kubeconfig(self.url, self.pki.ca_pem, {"client-certificate": str(cert), "client-key": str(key)})
        )
        process = self._spawn(
            "kwok",
            [
                f"--kubeconfig={config}",
                f"--config={KWOK_STAGES}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--node-ip=127.0.0.1",
                "--cidr=10.244.0.0/16",
                "--server-address=127.0.0.1:0",
                # The node's heartbeat: kwok renews its Lease, as a kubelet does. Without one, its stages
                # update the node's status too seldom, the node lifecycle controller finds the node
                # silent and every pod on it goes NotReady.
                "--node-lease-duration-seconds=40",
            ],
        )
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": NODE_NAME,
                    "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {
                        "kubernetes.io/hostname": NODE_NAME,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "type": "kwok",
                        "topology.kubernetes.io/zone": "zone-a",
                    },
                },
                "spec": {},
                "status": {
                    "allocatable": {"cpu": "1000", "memory": "4Ti", "pods": str(self.node_pods)},
                    "capacity": {"cpu": "1000", "memory": "4Ti", "pods": str(self.node_pods)},
                },
            }
        )
        self._wait("kwok", process, self._node_ready)

    def _node_ready(self) -> bool:
        node = self.get(f"/api/v1/nodes/{NODE_NAME}") or {}
        return any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (node.get("status") or {}).get("conditions") or []
        )

    def _prepare_cluster(self) -> None:
        self.apply(
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {
                    "name": STORAGE_CLASS,
                    "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                },
                "provisioner": PROVISIONER,
                "allowVolumeExpansion": True,
                "reclaimPolicy": "Delete",
                # As most clusters' classes: the scheduler places the pod, then waits for its claims to
                # be bound, rather than turning a pod away whose claim is not bound yet.
                "volumeBindingMode": "WaitForFirstConsumer",
            }
        )

    # ----- a small admin client (the tests use kubectl and the official client; this starts things)

    def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", content_type)
        with urllib.request.urlopen(request, context=self._ssl, timeout=10) as response:
            text = response.read().decode()
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text

    def get(self, path: str) -> dict[str, Any] | None:
        try:
            return dict(self.request("GET", path))
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise

    def apply_crds(self, directory: Path) -> None:
        for path in sorted(directory.glob("*.yaml")):
            crd = yaml.safe_load(path.read_text())
            self.request(
                "PATCH",
                f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}"
                "?fieldManager=e2e-tests&force=true",
                crd,
                content_type="application/apply-patch+yaml",
            )
        for path in sorted(directory.glob("*.yaml")):
            name = yaml.safe_load(path.read_text())["metadata"]["name"]
            deadline = time.monotonic() + 30
            while not self._established(name):
                if time.monotonic() > deadline:
                    raise ControlPlaneError(f"CRD {name} was not established")
                time.sleep(0.2)

    def _established(self, name: str) -> bool:
        crd = self.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}") or {}
        return any(
            c["type"] == "Established" and c["status"] == "True"
            for c in (crd.get("status") or {}).get("conditions") or []
        )

    def apply(self, obj: dict[str, Any], subresource: str = "") -> Any:
        """Server-side apply as the tests' own field manager."""
        path = api_path(obj) + (f"/{subresource}" if subresource else "")
        return self.request(
            "PATCH",
            f"{path}?fieldManager=e2e-tests&force=true",
            obj,
            content_type="application/apply-patch+yaml",
        )

    def audit_events(self) -> list[dict[str, Any]]:
        if not self.audit_log.is_file():
            return []
        events = []
        for line in self.audit_log.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                events.append(json.loads(line))
        return events


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)


CORE = {"Node", "PersistentVolume", "PersistentVolumeClaim", "Pod", "Namespace", "Secret", "ServiceAccount"}


def api_path(obj: dict[str, Any]) -> str:
    """The REST path of an object, for the few core and storage kinds the control plane writes itself."""
    kind, meta = obj["kind"], obj["metadata"]
    plural = {"StorageClass": "storageclasses", "PersistentVolume": "persistentvolumes"}.get(
        kind, kind.lower() + "s"
    )
    group = "/api/v1" if "/" not in obj["apiVersion"] else f"/apis/{obj['apiVersion']}"
    namespace = meta.get("namespace")
    prefix = f"{group}/namespaces/{namespace}" if namespace else group
    return f"{prefix}/{plural}/{meta['name']}"


class Poller:
    """A daemon thread that calls `sync` every `interval` seconds until stopped, as a controller of the
    cluster would; a sync that fails with one of `transient` is tried again at the next."""

    interval = 0.3
    transient: tuple[type[BaseException], ...] = (Exception,)

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(*self.transient):
                self.sync()

    def sync(self) -> None:
        raise NotImplementedError


class Provisioner(Poller):
    """A storage driver stand-in: claims of the test StorageClass get a volume; grown claims grow it."""

    def __init__(self, plane: ControlPlane) -> None:
        super().__init__("provisioner")
        self.plane = plane

    def sync(self) -> None:
        claims = self.plane.request("GET", "/api/v1/persistentvolumeclaims")["items"]
        for claim in claims:
            if claim["spec"].get("storageClassName") != STORAGE_CLASS:
                continue
            if claim["metadata"].get("deletionTimestamp"):
                continue
            if not claim["spec"].get("volumeName"):
                self._provision(claim)
            else:
                self._resize(claim)
        self._reclaim()

    def _provision(self, claim: dict[str, Any]) -> None:
        meta = claim["metadata"]
        name = f"pv-{meta['uid']}"
        if self.plane.get(f"/api/v1/persistentvolumes/{name}") is not None:
            return
        self.plane.request(
            "POST",
            "/api/v1/persistentvolumes",
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
                "spec": {
                    "capacity": {"storage": claim["spec"]["resources"]["requests"]["storage"]},
                    "accessModes": claim["spec"].get("accessModes") or ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Delete",
                    "storageClassName": STORAGE_CLASS,
                    "hostPath": {"path": f"/tmp/volumes/{name}"},
                    "claimRef": {
                        "apiVersion": "v1",
                        "kind": "PersistentVolumeClaim",
                        "namespace": meta["namespace"],
                        "name": meta["name"],
                        "uid": meta["uid"],
                    },
                },
            },
        )

    def _resize(self, claim: dict[str, Any]) -> None:
        wanted = claim["spec"]["resources"]["requests"]["storage"]
        have = ((claim.get("status") or {}).get("capacity") or {}).get("storage")
        if claim.get("status", {}).get("phase") != "Bound" or have == wanted:
            return
        volume = claim["spec"]["volumeName"]
        self.plane.request(
            "PATCH",
            f"/api/v1/persistentvolumes/{volume}",
            {"spec": {"capacity": {"storage": wanted}}},
            content_type="application/merge-patch+json",
        )
        meta = claim["metadata"]
        self.plane.request(
            "PATCH",
            f"/api/v1/namespaces/{meta['namespace']}/persistentvolumeclaims/{meta['name']}/status",
            {"status": {"capacity": {"storage": wanted}, "conditions": None, "allocatedResources": None}},
            content_type="application/merge-patch+json",
        )

    def _reclaim(self) -> None:
        """Released volumes of the Delete policy go, as a driver deletes them."""
        for volume in self.plane.request("GET", "/api/v1/persistentvolumes")["items"]:
            if (volume.get("status") or {}).get("phase") == "Released":
                with contextlib.suppress(urllib.error.HTTPError):
                    self.plane.request("DELETE", f"/api/v1/persistentvolumes/{volume['metadata']['name']}")


@contextlib.contextmanager
def running(directory: Path) -> Iterator[ControlPlane]:
    plane = ControlPlane(directory).start()
    try:
        yield plane
    finally:
        plane.stop()


def main() -> None:
    """`python tests/support/controlplane.py DIR`: start a control plane and keep it up (for debugging)."""
    import sys

    directory = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/memory-operator-control-plane")
    shutil.rmtree(directory, ignore_errors=True)
    with running(directory) as plane:
        print(f"KUBECONFIG={plane.admin_kubeconfig}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()
