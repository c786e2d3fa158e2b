"""The end-to-end suite's view of a real cluster: an admin client, kubectl and helm, the operator as a
process with its own ServiceAccount's token, and the part of a kubelet the tests play (finishing Jobs).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from support.controlplane import ControlPlane, Poller, free_port, kubeconfig

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".tools" / "bin"
KUBECTL = TOOLS / "kubectl"
HELM = TOOLS / "helm"
CHART = ROOT / "charts" / "memory-operator"
RELEASE = "memory-operator"
OPERATOR_NAMESPACE = "memory-operator"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{RELEASE}"
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
GROUP_PATH = "/apis/memory-operator.io/v1alpha1"
PATHS = {
    "MemoryStore": (GROUP_PATH, "memorystores"),
    "MemoryPolicy": (GROUP_PATH, "memorypolicies"),
    "MemoryBackup": (GROUP_PATH, "memorybackups"),
    "MemoryClient": (GROUP_PATH, "memoryclients"),
    "MemoryErasure": (GROUP_PATH, "memoryerasures"),
    "Namespace": ("/api/v1", "namespaces"),
    "Secret": ("/api/v1", "secrets"),
    "ConfigMap": ("/api/v1", "configmaps"),
    "Service": ("/api/v1", "services"),
    "ServiceAccount": ("/api/v1", "serviceaccounts"),
    "PersistentVolumeClaim": ("/api/v1", "persistentvolumeclaims"),
    "Pod": ("/api/v1", "pods"),
    "Event": ("/api/v1", "events"),
    "StatefulSet": ("/apis/apps/v1", "statefulsets"),
    "Deployment": ("/apis/apps/v1", "deployments"),
    "Job": ("/apis/batch/v1", "jobs"),
    "CronJob": ("/apis/batch/v1", "cronjobs"),
    "NetworkPolicy": ("/apis/networking.k8s.io/v1", "networkpolicies"),
    "PodDisruptionBudget": ("/apis/policy/v1", "poddisruptionbudgets"),
    "ResourceQuota": ("/api/v1", "resourcequotas"),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles"),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings"),
}
CLUSTER_SCOPED = {"Namespace"}

T = TypeVar("T")


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 60.0) -> T:
    """Poll until `check` returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (AssertionError, KeyError, TypeError, httpx.HTTPError) as error:
            last = error
        else:
            if last:
                return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


class Client:
    """A small synchronous client for the tests, as the cluster's administrator."""

    def __init__(self, plane: ControlPlane) -> None:
        self.http = httpx.Client(base_url=plane.url, timeout=15, verify=plane.admin_ssl_context())

    @staticmethod
    def path(kind: str, namespace: str | None, name: str | None = None, sub: str | None = None) -> str:
        base, plural = PATHS[kind]
        scoped = namespace and kind not in CLUSTER_SCOPED
        path = f"{base}/namespaces/{namespace}/{plural}" if scoped else f"{base}/{plural}"
        return path + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        response = self.http.get(self.path(kind, namespace, name))
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return dict(response.json())

    def list(self, kind: str, namespace: str | None, selector: str | None = None) -> list[dict[str, Any]]:
        params = {"labelSelector": selector} if selector else {}
        response = self.http.get(self.path(kind, namespace), params=params)
        response.raise_for_status()
        return list(response.json()["items"])

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(self.path(obj["kind"], obj["metadata"].get("namespace")), json=obj)
        if response.is_error:
            raise ApiError(response)
        return dict(response.json())

    def patch(self, kind: str, namespace: str | None, name: str, patch: Any, sub: str | None = None) -> Any:
        response = self.http.patch(
            self.path(kind, namespace, name, sub),
            content=json.dumps(patch),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        if response.is_error:
            raise ApiError(response)
        return response.json()

    def delete(self, kind: str, namespace: str | None, name: str) -> int:
        return self.http.delete(self.path(kind, namespace, name)).status_code

    def namespace(self, name: str, restricted: bool = True, manual_collection: bool = False) -> str:
        """A namespace enforcing the restricted Pod Security Standard (the operator makes the rest);
        `manual_collection`: its collection Jobs are the test's to finish."""
        labels = {"e2e": "true"}
        if manual_collection:
            labels[MANUAL_JOBS_LABEL] = "true"
        if restricted:
            for mode in ("enforce", "warn", "audit"):
                labels[f"pod-security.kubernetes.io/{mode}"] = "restricted"
                labels[f"pod-security.kubernetes.io/{mode}-version"] = "latest"
        self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
        return name


class ApiError(Exception):
    """A refusal of the API server, with its status message (what a user sees)."""

    def __init__(self, response: httpx.Response) -> None:
        self.code = response.status_code
        try:
            self.message = str(response.json().get("message"))
        except ValueError:
            self.message = response.text
        super().__init__(f"{self.code}: {self.message}")


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


def run_tool(tool: Path, *args: str, kubeconfig_path: Path, check: bool = True, timeout: float = 120) -> str:
    if not tool.is_file():
        raise AssertionError(f"{tool} is missing: run scripts/setup.sh")
    done = subprocess.run(
        [str(tool), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "KUBECONFIG": str(kubeconfig_path)},
        cwd=ROOT,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"{tool.name} {' '.join(args)} failed:\n{done.stderr}{done.stdout}")
    return done.stdout + (done.stderr if not check else "")


class Jobs:
    """What a kubelet does for a Job's pod: runs it (here the test does) and reports how it ended."""

    def __init__(self, client: Client, admin_kubeconfig: Path) -> None:
        self.client = client
        self.kubeconfig = admin_kubeconfig

    def from_cronjob(self, namespace: str, cronjob: str, name: str) -> str:
        """Start a Job from a CronJob now, as a user does (`kubectl create job --from=cronjob/...`)."""
        run_tool(
            KUBECTL, "-n", namespace, "create", "job", name, f"--from=cronjob/{cronjob}",
            kubeconfig_path=self.kubeconfig,
        )  # fmt: skip
        return name

    def pod(self, namespace: str, job: str) -> dict[str, Any]:
        """The Job's running pod, made by the Job controller and started by the fake node."""
        return wait_for(
            lambda: next(
                (
                    p
                    for p in self.client.list("Pod", namespace, f"batch.kubernetes.io/job-name={job}")
                    if (p.get("status") or {}).get("phase") == "Running"
                    and not p["metadata"].get("deletionTimestamp")
                ),
                None,
            ),
            f"a running pod of Job {job}",
        )

    def finish(self, namespace: str, job: str, message: Any, succeeded: bool = True) -> None:
        """The pod's container exits (0, or 1 for a run that failed) leaving `message` as its
        termination message, reported the way a kubelet reports it; the Job controller does the rest."""
        pod = self.pod(namespace, job)
        text = message if isinstance(message, str) else json.dumps(message)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        containers = pod["spec"]["containers"]
        self.client.patch(
            "Pod",
            namespace,
            pod["metadata"]["name"],
            {
                "status": {
                    "phase": "Succeeded" if succeeded else "Failed",
                    "conditions": [
                        {"type": "Ready", "status": "False", "lastTransitionTime": now},
                        {"type": "ContainersReady", "status": "False", "lastTransitionTime": now},
                    ],
                    "containerStatuses": [
                        {
                            "name": c["name"],
                            "image": c["image"],
                            "imageID": "",
                            "ready": False,
                            "restartCount": 0,
                            "started": False,
                            "state": {
                                "terminated": {
                                    "exitCode": 0 if succeeded else 1,
                                    "reason": "Completed" if succeeded else "Error",
                                    "message": text,
                                    "startedAt": now,
                                    "finishedAt": now,
                                }
                            },
                        }
                        for c in containers
                    ],
                }
            },
            sub="status",
        )

    def wait_finished(self, namespace: str, job: str) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            body = self.client.get("Job", namespace, job) or {}
            conditions = (body.get("status") or {}).get("conditions") or []
            done = any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in conditions)
            return body if done else None

        return wait_for(finished, f"Job {job} finished")


# The summary of a collection Job that made the store's collection, as the job writes it.
COLLECTION_MADE = {"phase": "Completed", "peers": 1, "collections": [{"name": "memories", "created": True}]}
# Namespaces labelled so run their collection Jobs by hand.
MANUAL_JOBS_LABEL = "e2e-manual-collection"


class CollectionJobs(Poller):
    """Finishes every collection Job as if its command had made the collection: the stores of the
    tests serve once theirs is made. A namespace labelled `MANUAL_JOBS_LABEL` is left to its test."""

    interval = 0.5
    transient = (httpx.HTTPError, AssertionError)

    def __init__(self, client: Client, jobs: Jobs) -> None:
        super().__init__("collection-jobs")
        self.client, self.jobs = client, jobs
        # By uid: a store whose settings go back and forth runs a new Job of an earlier name.
        self.finished: set[str] = set()

    def sync(self) -> None:
        manual = {n["metadata"]["name"] for n in self.client.list("Namespace", None, MANUAL_JOBS_LABEL)}
        response = self.client.http.get(
            "/apis/batch/v1/jobs", params={"labelSelector": "memory-operator.io/collection-settings"}
        )
        response.raise_for_status()
        for job in response.json()["items"]:
            key = (job["metadata"]["namespace"], job["metadata"]["name"])
            uid = job["metadata"]["uid"]
            if uid in self.finished or key[0] in manual or (job.get("status") or {}).get("conditions"):
                continue
            running = [
                p
                for p in self.client.list("Pod", key[0], f"batch.kubernetes.io/job-name={key[1]}")
                if (p.get("status") or {}).get("phase") == "Running"
            ]
            if running:
                self.jobs.finish(key[0], key[1], COLLECTION_MADE)
                self.finished.add(uid)


class OperatorProcess:
    """`memory-operator run` as a process, started with the chart's arguments and environment and a
    kubeconfig holding a token of the chart's ServiceAccount, so every call passes through RBAC."""

    def __init__(
        self,
        args: list[str],
        env: dict[str, str],
        kubeconfig_path: Path,
        log: Path,
        resync_seconds: float = 3.0,
    ) -> None:
        self.args, self.env, self.kubeconfig, self.log_path = args, env, kubeconfig_path, log
        self.resync = resync_seconds
        self.process: subprocess.Popen[bytes] | None = None
        self.liveness_port = self.metrics_port = 0

    def env_overrides(self) -> dict[str, str]:
        """What this process was given beyond the chart's environment (e.g. where Qdrant is)."""
        return {k: v for k, v in self.env.items() if k.startswith("MEMORY_OPERATOR_QDRANT")}

    def start(self) -> OperatorProcess:
        self.liveness_port, self.metrics_port = free_port(), free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("KUBERNETES_", "MEMORY_OPERATOR_"))},
            **self.env,
            "KUBECONFIG": str(self.kubeconfig),
            "PYTHONUNBUFFERED": "1",
            "MEMORY_OPERATOR_LIVENESS_PORT": str(self.liveness_port),
            "MEMORY_OPERATOR_METRICS_PORT": str(self.metrics_port),
            "MEMORY_OPERATOR_BIND_ADDRESS": "127.0.0.1",
            "MEMORY_OPERATOR_RESYNC_SECONDS": str(self.resync),
            "MEMORY_OPERATOR_SCHEDULE_CHECK_SECONDS": "2",
            # A replica that stopped answering is given up after this many seconds.
            "MEMORY_OPERATOR_PEERING_LIFETIME": "10",
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "memory_operator", *self.args, "--verbose"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=ROOT,
            )
        wait_for(self._live, "the operator's liveness endpoint", timeout=60)
        return self

    def _live(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"the operator exited: {self.log_path.read_text()[-3000:]}")
        try:
            return httpx.get(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text

    def kill(self) -> None:
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def install_chart(plane: ControlPlane, values: Iterable[str] = ()) -> str:
    """`helm install` of the working tree's chart, as a user installs it."""
    sets = [arg for value in values for arg in ("--set", value)]
    return run_tool(
        HELM, "install", RELEASE, str(CHART), "-n", OPERATOR_NAMESPACE, "--create-namespace", "--wait",
        "--timeout", "90s", *sets,
        kubeconfig_path=plane.admin_kubeconfig,
    )  # fmt: skip


def service_account_kubeconfig(plane: ControlPlane, client: Client, path: Path) -> Path:
    """A kubeconfig with a token of the chart's ServiceAccount (TokenRequest), as a pod would have."""
    response = client.http.post(
        Client.path("ServiceAccount", OPERATOR_NAMESPACE, RELEASE, "token"),
        json={
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 86400},
        },
    )
    response.raise_for_status()
    token = response.json()["status"]["token"]
    ca = (plane.directory / "pki" / "ca.crt").read_bytes()
    path.write_text(kubeconfig(plane.url, ca, {"token": token}, name="memory-operator"))
    path.chmod(0o600)
    return path


def operator_command(client: Client, pod_name: str = "memory-operator-0") -> tuple[list[str], dict[str, str]]:
    """The arguments and environment of the operator container the chart deployed, as the pod
    `pod_name` would have them."""
    deployment = client.get("Deployment", OPERATOR_NAMESPACE, RELEASE)
    assert deployment is not None, "the chart's Deployment"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = var["value"]
        elif var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
            env[var["name"]] = OPERATOR_NAMESPACE
        elif var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[var["name"]] = pod_name
        else:
            raise AssertionError(f"the test cannot resolve {var}")
    args = [a for a in container.get("args") or [] if not a.startswith("--log-format")]
    return args, env


def audit_requests(
    plane: ControlPlane,
    namespace: str,
    since: float,
    verbs: Iterable[str] = WRITE_VERBS,
    user: str = OPERATOR_USER,
) -> list[dict[str, Any]]:
    """Requests of `user` with these verbs in `namespace` after `since` (epoch seconds), from the
    apiserver's audit log."""
    wanted = set(verbs)
    return [
        event
        for event in plane.audit_events()
        if event.get("user", {}).get("username") == user
        and event.get("verb") in wanted
        and (event.get("objectRef") or {}).get("namespace") == namespace
        and _epoch(event["stageTimestamp"]) >= since
    ]


def audit_writes(plane: ControlPlane, namespace: str, since: float) -> list[dict[str, Any]]:
    return audit_requests(plane, namespace, since)


def forbidden(plane: ControlPlane, since: float, user: str = OPERATOR_USER) -> list[str]:
    """Requests of `user` that authorization (RBAC) refused since `since`.

    Admission refusals are not counted: they are answers about the object (a namespace being
    terminated refuses new content to everyone, the cluster's own controllers included)."""
    return [
        f"{e['verb']} {e.get('requestURI')}"
        for e in plane.audit_events()
        if e.get("user", {}).get("username") == user
        and (e.get("annotations") or {}).get("authorization.k8s.io/decision") == "forbid"
        and _epoch(e["stageTimestamp"]) >= since
    ]


def _epoch(timestamp: str) -> float:
    import datetime

    return datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def secret_value(secret: dict[str, Any], key: str) -> str:
    return base64.b64decode(secret["data"][key]).decode()


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def pod_environment(
    client: Client, pod: dict[str, Any], files: Path
) -> tuple[list[str], dict[str, str], dict[str, Path]]:
    """The container's arguments and environment as the kubelet would give them: Secret and ConfigMap
    references resolved, every volume a folder under `files` (ConfigMaps and Secrets written into theirs), and
    paths into the mounts rewritten to those folders. Returns the folders by mount path too."""
    namespace = pod["metadata"]["namespace"]
    container = pod["spec"]["containers"][0]
    mounts: dict[str, Path] = {}
    for volume in pod["spec"].get("volumes") or []:
        directory = files / "volumes" / volume["name"]
        directory.mkdir(parents=True, exist_ok=True)
        if "configMap" in volume:
            config_map = client.get("ConfigMap", namespace, volume["configMap"]["name"]) or {}
            for key, text in (config_map.get("data") or {}).items():
                (directory / key).write_text(text)
        if "secret" in volume:
            secret = client.get("Secret", namespace, volume["secret"]["secretName"]) or {}
            for key in secret.get("data") or {}:
                (directory / key).write_text(secret_value(secret, key))
        for mount in container.get("volumeMounts") or []:
            if mount["name"] == volume["name"]:
                mounts[mount["mountPath"]] = directory
    env: dict[str, str] = {}
    for var in container.get("env") or []:
        value = var.get("value")
        source = var.get("valueFrom") or {}
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            secret = client.get("Secret", namespace, ref["name"]) or {}
            value = secret_value(secret, ref["key"]) if ref["key"] in (secret.get("data") or {}) else None
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            value = ((client.get("ConfigMap", namespace, ref["name"]) or {}).get("data") or {}).get(
                ref["key"]
            )
        if value is None:
            continue
        env[var["name"]] = local_paths(value, mounts)
    return [local_paths(a, mounts) for a in container.get("args") or []], env, mounts


def local_paths(value: str, mounts: dict[str, Path]) -> str:
    """`value` with a leading mount path (the longest that matches) turned into its local folder."""
    for mount_path, local in sorted(mounts.items(), key=lambda item: -len(item[0])):
        if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
            return str(local) + value[len(mount_path) :]
    return value


class InPod(str):
    """An argument that is a path inside the pod: it becomes the local copy of its mount."""


def run_job_command(
    client: Client,
    pod: dict[str, Any],
    files: Path,
    extra_args: Sequence[str] = (),
    overrides: dict[str, str] | None = None,
) -> tuple[int, str]:
    """Run a Job pod's `memory-operator` command here; returns its exit code and termination message.

    `extra_args` stand in for what the pod reaches through the cluster's network (a local Qdrant) or
    finds at its mount paths (`InPod` arguments, rewritten to the local copies)."""
    args, env, mounts = pod_environment(client, pod, files)
    local_args = [local_paths(a, mounts) if isinstance(a, InPod) else a for a in extra_args]
    # The pod reaches no API server unless its ServiceAccount token is mounted: nor does this run.
    nowhere = files / "no-cluster.kubeconfig"
    nowhere.write_text(kubeconfig("https://127.0.0.1:1", b"", {"token": "none"}))
    termination_log = files / "termination-log"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "memory_operator",
            *args,
            *local_args,
            "--termination-log",
            str(termination_log),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith(("MEMORY_", "KUBERNETES_"))},
            "KUBECONFIG": str(nowhere),
            **env,
            **(overrides or {}),
        },
        cwd=files,
    )
    message = termination_log.read_text() if termination_log.is_file() else ""
    assert message, f"no termination message: {done.stderr[-3000:]}"
    return done.returncode, message
