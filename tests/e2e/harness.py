"""The emulator, the operator process and a simulated kubelet, driven over HTTP as a user would."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from e2e.emulator import Emulator

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = ROOT / ".tools" / "bin" / "kubectl"
GROUP_PATH = "/apis/memory-operator.io/v1alpha1"
PATHS = {
    "MemoryStore": (GROUP_PATH, "memorystores"),
    "MemoryPolicy": (GROUP_PATH, "memorypolicies"),
    "MemoryBackup": (GROUP_PATH, "memorybackups"),
    "Secret": ("/api/v1", "secrets"),
    "ConfigMap": ("/api/v1", "configmaps"),
    "Service": ("/api/v1", "services"),
    "PersistentVolumeClaim": ("/api/v1", "persistentvolumeclaims"),
    "Pod": ("/api/v1", "pods"),
    "Event": ("/api/v1", "events"),
    "StatefulSet": ("/apis/apps/v1", "statefulsets"),
    "Deployment": ("/apis/apps/v1", "deployments"),
    "Job": ("/apis/batch/v1", "jobs"),
    "CronJob": ("/apis/batch/v1", "cronjobs"),
    "NetworkPolicy": ("/apis/networking.k8s.io/v1", "networkpolicies"),
    "PodDisruptionBudget": ("/apis/policy/v1", "poddisruptionbudgets"),
}

T = TypeVar("T")


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    """Poll until `check` returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (AssertionError, KeyError, httpx.HTTPError) as error:
            last = error
        else:
            if last:
                return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Client:
    """A tiny synchronous API client for the tests."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=10)

    @staticmethod
    def path(kind: str, namespace: str | None, name: str | None = None, sub: str | None = None) -> str:
        base, plural = PATHS[kind]
        path = f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"
        return path + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        response = self.http.get(self.path(kind, namespace, name))
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return dict(response.json())

    def list(self, kind: str, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
        params = {"labelSelector": selector} if selector else {}
        response = self.http.get(self.path(kind, namespace), params=params)
        response.raise_for_status()
        return list(response.json()["items"])

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(self.path(obj["kind"], obj["metadata"].get("namespace")), json=obj)
        response.raise_for_status()
        return dict(response.json())

    def patch(self, kind: str, namespace: str | None, name: str, patch: Any, sub: str | None = None) -> Any:
        response = self.http.patch(
            self.path(kind, namespace, name, sub),
            content=json.dumps(patch),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        response.raise_for_status()
        return response.json()

    def delete(self, kind: str, namespace: str | None, name: str) -> int:
        return self.http.delete(self.path(kind, namespace, name)).status_code


def store(namespace: str, name: str, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "memory-operator.io/v1alpha1",
        "kind": "MemoryStore",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": spec,
    }


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    return {}


class Kubelet:
    """Plays the cluster's controllers: workload readiness and finished Jobs with their pod's message."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def ready(self, kind: str, namespace: str, name: str, ready: int | None = None) -> None:
        obj = self.client.get(kind, namespace, name)
        assert obj is not None, f"{kind} {name} missing"
        replicas = obj["spec"].get("replicas", 1)
        count = replicas if ready is None else ready
        if kind == "StatefulSet":
            self.provision_claims(obj, replicas)
        self.client.patch(
            kind,
            namespace,
            name,
            {
                "status": {
                    "observedGeneration": obj["metadata"]["generation"],
                    "replicas": replicas,
                    "readyReplicas": count,
                    "updatedReplicas": replicas,
                    "availableReplicas": count,
                }
            },
            sub="status",
        )

    def provision_claims(self, statefulset: dict[str, Any], replicas: int) -> None:
        """The claims the StatefulSet controller makes from its templates (kept on scale-down and delete)."""
        meta = statefulset["metadata"]
        selector = statefulset["spec"].get("selector", {}).get("matchLabels") or {}
        for template in statefulset["spec"].get("volumeClaimTemplates") or []:
            for ordinal in range(replicas):
                name = f"{template['metadata']['name']}-{meta['name']}-{ordinal}"
                if self.client.get("PersistentVolumeClaim", meta["namespace"], name) is not None:
                    continue
                labels = {**(template["metadata"].get("labels") or {}), **selector}
                self.client.create(
                    {
                        "apiVersion": "v1",
                        "kind": "PersistentVolumeClaim",
                        "metadata": {"name": name, "namespace": meta["namespace"], "labels": labels},
                        "spec": template["spec"],
                    }
                )

    def run_cronjob(self, namespace: str, cronjob: str, run: int) -> str:
        """Start a Job from a CronJob as its controller does (labels, owner); returns the Job's name."""
        owner = self.client.get("CronJob", namespace, cronjob)
        assert owner is not None, f"CronJob {cronjob} missing"
        template = owner["spec"]["jobTemplate"]
        name = f"{cronjob}-{29000000 + run}"
        self.client.create(
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": dict(template.get("metadata", {}).get("labels") or {}),
                    "ownerReferences": [
                        {
                            "apiVersion": "batch/v1",
                            "kind": "CronJob",
                            "name": cronjob,
                            "uid": owner["metadata"]["uid"],
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "spec": template["spec"],
            }
        )
        return name

    def finish_job(self, namespace: str, job: str, message: dict[str, Any], succeeded: bool = True) -> None:
        self.client.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"{job}-pod",
                    "namespace": namespace,
                    "labels": {"job-name": job, "batch.kubernetes.io/job-name": job},
                },
                "spec": {"containers": [{"name": "job", "image": "x"}]},
            }
        )
        self.client.patch(
            "Pod",
            namespace,
            f"{job}-pod",
            {
                "status": {
                    "phase": "Succeeded" if succeeded else "Failed",
                    "containerStatuses": [
                        {
                            "name": "job",
                            "state": {
                                "terminated": {
                                    "exitCode": 0 if succeeded else 1,
                                    "message": json.dumps(message),
                                    "finishedAt": "2025-01-01T00:00:00Z",
                                }
                            },
                        }
                    ],
                }
            },
            sub="status",
        )
        self.client.patch(
            "Job",
            namespace,
            job,
            {
                "status": {
                    "completionTime": "2025-01-01T00:00:01Z" if succeeded else None,
                    "conditions": [
                        {
                            "type": "Complete" if succeeded else "Failed",
                            "status": "True",
                            "lastTransitionTime": "2025-01-01T00:00:01Z",
                        }
                    ],
                }
            },
            sub="status",
        )


class OperatorProcess:
    """`memory-operator run` as a subprocess against the emulator."""

    def __init__(
        self,
        kubeconfig: Path,
        log: Path,
        resync_seconds: float = 3.0,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.kubeconfig, self.log_path, self.resync = kubeconfig, log, resync_seconds
        self.extra_env = dict(extra_env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.liveness_port = self.metrics_port = 0

    def start(self) -> OperatorProcess:
        self.liveness_port, self.metrics_port = free_port(), free_port()
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        env.pop("KUBERNETES_SERVICE_HOST", None)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "memory_operator",
                    "run",
                    "--all-namespaces",
                    "--liveness-port",
                    str(self.liveness_port),
                    "--metrics-port",
                    str(self.metrics_port),
                    "--bind-address",
                    "127.0.0.1",
                    "--resync-seconds",
                    str(self.resync),
                    "--verbose",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=ROOT,
            )
        wait_for(self._live, "the operator's liveness endpoint", timeout=30)
        return self

    def _live(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"the operator exited: {self.log_path.read_text()[-3000:]}")
        try:
            return httpx.get(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def load_crds(client: Client) -> None:
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        response = client.http.post(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=yaml.safe_load(path.read_text())
        )
        response.raise_for_status()


def start_emulator() -> tuple[Emulator, Client]:
    emulator = Emulator().start()
    client = Client(emulator.url)
    load_crds(client)
    return emulator, client
