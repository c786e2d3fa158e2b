#!/usr/bin/env python3
"""The operator at scale on the real control plane, beside a bare Kopf operator as the baseline.

For each count N, each operator runs alone, watching a namespace of its own, and N MemoryStores are
created there at once; a run starts once the namespace of the run before it is gone. Printed per run:

- converge: seconds from the first create until every store's children exist (a StatefulSet and a
  Deployment each) and its status names the generation it saw, taken from watches of the namespace
  opened before the stores are created (the moment the last of these showed), and the CPU seconds the
  operator used until then (the steadier figure: a converge also waits on the control plane, which
  shares the machine's cores); `listed_s` is when a LIST confirmed it, which also counts how long
  the loaded API server takes to answer that LIST;
- and, for memory-operator only: its resident memory once converged and quiet (no write for 15 s:
  pods ready and statuses saying so), what an idle minute costs per
  store (every request but watches, from the apiserver's audit log), the requests of one spec change
  of every store (writes, and reads that are not watches), and the watches it holds with the label
  selector each carries.

The baseline (benchmarks/baseline_operator.py) server-side applies the same rendered children and
patches status, nothing else. Both run as a ServiceAccount bound to cluster-admin, so that the audit
log records their reads.

    python benchmarks/controller_scale.py --stores 100 300 [--idle-seconds 120] [--runs 4]

A converge varies by a third from run to run on two cores (the order in which kube-apiserver allocates
cluster IPs while the controllers start pods): with `--runs N`, each count is measured N times, the
baseline and memory-operator in turn, and a last line per count gives each one's mean, least and most
converge seconds and the ratio of the means. The other figures come from the first run.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402

from support.controlplane import ControlPlane, free_port, kubeconfig  # noqa: E402

GROUP = "/apis/memory-operator.io/v1alpha1"
USER = "system:serviceaccount:bench-system:bench"
WATCH = "watch"


def http(plane: ControlPlane) -> httpx.Client:
    return httpx.Client(base_url=plane.url, verify=plane.admin_ssl_context(), timeout=30)


def operator_identity(plane: ControlPlane, client: httpx.Client, directory: Path) -> Path:
    """A kubeconfig with the token of a ServiceAccount bound to cluster-admin."""
    client.post("/api/v1/namespaces", json={"metadata": {"name": "bench-system"}}).raise_for_status()
    client.post(
        "/api/v1/namespaces/bench-system/serviceaccounts", json={"metadata": {"name": "bench"}}
    ).raise_for_status()
    client.post(
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        json={
            "metadata": {"name": "bench"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "bench", "namespace": "bench-system"}],
        },
    ).raise_for_status()
    token = client.post(
        "/api/v1/namespaces/bench-system/serviceaccounts/bench/token",
        json={"spec": {"expirationSeconds": 86400}},
    ).json()["status"]["token"]
    path = directory / "bench.kubeconfig"
    path.write_text(
        kubeconfig(plane.url, (plane.directory / "pki" / "ca.crt").read_bytes(), {"token": token})
    )
    return path


def start(which: str, namespace: str, config: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    metrics = free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(config),
        "PYTHONUNBUFFERED": "1",
        "MEMORY_OPERATOR_METRICS_PORT": str(metrics),
        "MEMORY_OPERATOR_LIVENESS_PORT": str(free_port()),
        "MEMORY_OPERATOR_BIND_ADDRESS": "127.0.0.1",
        # As the chart's Deployment runs the operator.
        "MALLOC_ARENA_MAX": "2",
    }
    if which == "baseline":
        args = [sys.executable, "-m", "kopf", "run", "--standalone", f"--namespace={namespace}"]
        args.append(str(ROOT / "benchmarks" / "baseline_operator.py"))
    else:
        args = [sys.executable, "-m", "memory_operator", "run", f"--namespace={namespace}"]
    with log.open("ab") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    return process, metrics


def create_stores(client: httpx.Client, namespace: str, count: int) -> None:
    def create(i: int) -> None:
        body = {
            "apiVersion": "memory-operator.io/v1alpha1",
            "kind": "MemoryStore",
            "metadata": {"name": f"s{i}", "namespace": namespace},
            "spec": {},
        }
        client.post(f"{GROUP}/namespaces/{namespace}/memorystores", json=body).raise_for_status()

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(create, range(count)))


class ConvergeWatch:
    """When each store first showed a status of its generation, and its StatefulSet and Deployment
    their creation, as watches of the namespace report them (seconds of `time.monotonic()`)."""

    PATHS = {
        "stores": f"{GROUP}/namespaces/{{namespace}}/memorystores",
        "statefulsets": "/apis/apps/v1/namespaces/{namespace}/statefulsets",
        "deployments": "/apis/apps/v1/namespaces/{namespace}/deployments",
    }

    def __init__(self, plane: ControlPlane, namespace: str, timeout: float) -> None:
        self.seen: dict[str, dict[str, float]] = {kind: {} for kind in self.PATHS}
        self._closed = False
        self._opened = threading.Barrier(len(self.PATHS) + 1, timeout=60)
        self._clients = [http(plane) for _ in self.PATHS]
        for (kind, path), client in zip(self.PATHS.items(), self._clients, strict=True):
            url = path.format(namespace=namespace)
            threading.Thread(target=self._watch, args=(client, kind, url, timeout), daemon=True).start()
        self._opened.wait()  # every watch is open before a store is created

    def _watch(self, client: httpx.Client, kind: str, url: str, timeout: float) -> None:
        try:
            self._follow(client, kind, url, timeout)
        except httpx.HTTPError:
            if not self._closed:
                raise

    def _follow(self, client: httpx.Client, kind: str, url: str, timeout: float) -> None:
        params = {"watch": "1", "timeoutSeconds": str(int(timeout))}
        with client.stream("GET", url, params=params, timeout=httpx.Timeout(30, read=None)) as response:
            self._opened.wait()
            for line in response.iter_lines():
                event = json.loads(line)
                obj = event["object"]
                name = obj["metadata"]["name"]
                if name in self.seen[kind] or event["type"] not in ("ADDED", "MODIFIED"):
                    continue
                observed = (obj.get("status") or {}).get("observedGeneration")
                if kind != "stores" or observed == obj["metadata"]["generation"]:
                    self.seen[kind][name] = time.monotonic()

    def converged_at(self, count: int) -> float | None:
        """The moment the last store converged, once all `count` have."""
        seen = [dict(times) for times in self.seen.values()]
        if any(len(times) < count for times in seen):
            return None
        return max(max(times.values()) for times in seen)

    def close(self) -> None:
        self._closed = True
        for client in self._clients:
            client.close()


def converged(client: httpx.Client, namespace: str, count: int) -> bool:
    stores = client.get(f"{GROUP}/namespaces/{namespace}/memorystores").json()["items"]
    seen = sum(
        1 for s in stores if (s.get("status") or {}).get("observedGeneration") == s["metadata"]["generation"]
    )
    sts = len(client.get(f"/apis/apps/v1/namespaces/{namespace}/statefulsets").json()["items"])
    deploys = len(client.get(f"/apis/apps/v1/namespaces/{namespace}/deployments").json()["items"])
    return seen == sts == deploys == count


def wait(check: Any, timeout: float) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise TimeoutError("did not converge")
        time.sleep(0.5)
    return time.monotonic() - started


def requests_since(plane: ControlPlane, since: float, namespace: str | None = None) -> list[dict[str, Any]]:
    import datetime

    result = []
    for event in plane.audit_events():
        if event.get("user", {}).get("username") != USER:
            continue
        stamp = datetime.datetime.fromisoformat(event["stageTimestamp"].replace("Z", "+00:00")).timestamp()
        if stamp < since:
            continue
        if namespace and (event.get("objectRef") or {}).get("namespace") not in (namespace, None):
            continue
        result.append(event)
    return result


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """CPU time the process has used (user and system): steadier from run to run than a converge."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    plane: ControlPlane,
    client: httpx.Client,
    config: Path,
    which: str,
    count: int,
    idle: float,
    run: int = 1,
) -> dict[str, Any]:
    namespace = f"{which}-{count}" + (f"-{run}" if run > 1 else "")
    client.post("/api/v1/namespaces", json={"metadata": {"name": namespace}}).raise_for_status()
    process, _metrics = start(which, namespace, config, plane.logs / f"{namespace}.log")
    try:
        time.sleep(3)  # the operator's start-up: listing and watches
        watch = ConvergeWatch(plane, namespace, timeout=1800)
        try:
            started = time.monotonic()
            create_stores(client, namespace, count)
            wait(lambda: converged(client, namespace, count), 1800)
            listed = time.monotonic() - started
            cpu = cpu_seconds(process.pid)
            wait(lambda: watch.converged_at(count) is not None, 60)
            seconds = (watch.converged_at(count) or 0.0) - started
        finally:
            watch.close()
        result: dict[str, Any] = {
            "operator": which,
            "stores": count,
            "converge_s": round(seconds, 1),
            "listed_s": round(listed, 1),
            "cpu_s": round(cpu, 1),
        }
        if which == "operator" and run == 1:
            result.update(details(plane, client, namespace, count, idle, process.pid))
        return result
    finally:
        try:
            # The next run starts on a quiet cluster, not while this one's objects are being deleted;
            # the operator still runs meanwhile: the stores' finalizers are its own.
            client.delete(f"/api/v1/namespaces/{namespace}")
            wait(lambda: client.get(f"/api/v1/namespaces/{namespace}").status_code == 404, 900)
        finally:
            process.terminate()
            process.wait(30)


def details(
    plane: ControlPlane, client: httpx.Client, namespace: str, count: int, idle: float, pid: int
) -> dict[str, Any]:
    quiet(plane, namespace)  # pods become ready and statuses say so: the tail of converging
    rss = rss_mb(pid)
    since = time.time()
    time.sleep(idle)
    idle_requests = [e for e in requests_since(plane, since, namespace) if e["verb"] != WATCH]
    since = time.time()
    stores = client.get(f"{GROUP}/namespaces/{namespace}/memorystores").json()["items"]
    for store in stores:
        patch = {"spec": {"server": {"replicas": 2}}}
        client.patch(
            f"{GROUP}/namespaces/{namespace}/memorystores/{store['metadata']['name']}",
            content=json.dumps(patch),
            headers={"Content-Type": "application/merge-patch+json"},
        ).raise_for_status()
    wait(lambda: all_observed(client, namespace), 600)
    time.sleep(10)
    change = requests_since(plane, since, namespace)
    writes = [e for e in change if e["verb"] in ("create", "update", "patch", "delete")]
    reads = [e for e in change if e["verb"] in ("get", "list")]
    watches = sorted(
        {
            e["requestURI"].split("?")[0]
            + ("  [labelSelector]" if "labelSelector" in e["requestURI"] else "")
            for e in requests_since(plane, 0)
            if e["verb"] == WATCH
        }
    )
    return {
        "rss_mb": round(rss),
        "idle_requests_per_store_minute": round(len(idle_requests) / count / (idle / 60), 3),
        "idle_requests_by_resource": _by_resource(idle_requests, count),
        "change_writes_per_store": round(len(writes) / count, 2),
        "change_writes_by_resource": _by_resource(writes, count),
        "change_reads": len(reads),
        "watches": watches,
    }


def _by_resource(events: list[dict[str, Any]], count: int) -> dict[str, float]:
    found: dict[str, int] = {}
    for event in events:
        ref = event.get("objectRef") or {}
        key = f"{event['verb']} {ref.get('resource')}" + (
            f"/{ref['subresource']}" if ref.get("subresource") else ""
        )
        found[key] = found.get(key, 0) + 1
    return {key: round(value / count, 2) for key, value in sorted(found.items())}


def quiet(plane: ControlPlane, namespace: str, seconds: float = 15, timeout: float = 600) -> None:
    """Wait until the operator has written nothing in the namespace for `seconds`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        since = time.time() - seconds
        if not any(e["verb"] != WATCH for e in requests_since(plane, since, namespace)):
            return
        time.sleep(2)


def all_observed(client: httpx.Client, namespace: str) -> bool:
    stores = client.get(f"{GROUP}/namespaces/{namespace}/memorystores").json()["items"]
    return all(
        (s.get("status") or {}).get("observedGeneration") == s["metadata"]["generation"] for s in stores
    )


def summary(count: int, converges: dict[str, list[float]], cpus: dict[str, list[float]]) -> dict[str, Any]:
    """Mean, least and most converge seconds of each operator, its mean CPU seconds, and the ratio of
    the means."""
    result: dict[str, Any] = {"stores": count, "runs": len(converges["operator"])}
    for which, seconds in converges.items():
        result[which] = {
            "mean_s": round(sum(seconds) / len(seconds), 1),
            "min_s": min(seconds),
            "max_s": max(seconds),
            "mean_cpu_s": round(sum(cpus[which]) / len(cpus[which]), 1),
        }
    result["ratio_of_means"] = round(result["operator"]["mean_s"] / result["baseline"]["mean_s"], 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stores", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--idle-seconds", type=float, default=120)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="controller-scale-"))
    plane = ControlPlane(directory, node_pods=4 * max(args.stores) + 50).start()
    try:
        plane.apply_crds(ROOT / "crds")
        client = http(plane)
        config = operator_identity(plane, client, directory)
        for count in args.stores:
            converges: dict[str, list[float]] = {"baseline": [], "operator": []}
            cpus: dict[str, list[float]] = {"baseline": [], "operator": []}
            for run in range(1, args.runs + 1):
                for which in converges:
                    result = measure(plane, client, config, which, count, args.idle_seconds, run)
                    converges[which].append(result["converge_s"])
                    cpus[which].append(result["cpu_s"])
                    print(json.dumps(result), flush=True)
            if args.runs > 1:
                print(json.dumps(summary(count, converges, cpus)), flush=True)
    finally:
        plane.stop()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
