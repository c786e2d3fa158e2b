"""manifests/: install.yaml in step with the chart, and applied by the real kubectl; the kustomization."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from install.helpers import NAMESPACE, ROOT, run, tool
from support.http import JsonHandler, LoopbackServer

INSTALL = ROOT / "manifests" / "install.yaml"

# The API resources a cluster serves for what install.yaml holds (kind, plural, namespaced), so that
# kubectl can map kinds to resources. A kind missing here is one a real cluster would not know either.
DISCOVERY: dict[str, list[tuple[str, str, bool]]] = {
    "v1": [
        ("Namespace", "namespaces", False),
        ("ServiceAccount", "serviceaccounts", True),
        ("Service", "services", True),
        ("ConfigMap", "configmaps", True),
        ("Secret", "secrets", True),
    ],
    "apps/v1": [("Deployment", "deployments", True), ("StatefulSet", "statefulsets", True)],
    "rbac.authorization.k8s.io/v1": [
        ("ClusterRole", "clusterroles", False),
        ("ClusterRoleBinding", "clusterrolebindings", False),
        ("Role", "roles", True),
        ("RoleBinding", "rolebindings", True),
    ],
    "apiextensions.k8s.io/v1": [("CustomResourceDefinition", "customresourcedefinitions", False)],
}


def discovery_documents() -> dict[str, Any]:
    """Path to body of the discovery endpoints of an API server serving DISCOVERY, and nothing else."""
    documents: dict[str, Any] = {
        "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
        "/version": {"major": "1", "minor": "34", "gitVersion": "v1.34.0"},
    }
    groups = []
    for group_version, resources in DISCOVERY.items():
        path = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        documents[path] = {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": [
                {
                    "name": plural,
                    "singularName": kind.lower(),
                    "namespaced": namespaced,
                    "kind": kind,
                    "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                }
                for kind, plural, namespaced in resources
            ],
        }
        if group_version != "v1":
            group, version = group_version.split("/")
            entry = {"groupVersion": group_version, "version": version}
            groups.append({"name": group, "versions": [entry], "preferredVersion": entry})
    documents["/apis"] = {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
    return documents


@pytest.fixture(scope="module")
def api_server() -> Iterator[str]:
    """A stand-in API server on 127.0.0.1: discovery, and 404 for every object (nothing exists yet)."""
    documents = discovery_documents()

    class Handler(JsonHandler):
        def do_GET(self) -> None:
            body = documents.get(self.path.split("?", 1)[0])
            status = 200 if body is not None else 404
            if body is None:
                body = {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "reason": "NotFound",
                    "code": 404,
                }
            self.answer(status, body)

    server = LoopbackServer(Handler).start()
    yield server.url
    server.stop()


def kubectl_dry_run(server: str, tmp_path: Path, *source: str) -> str:
    """`kubectl apply --dry-run=client` against the stand-in server, never the user's own cluster."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "stand-in", "cluster": {"server": server}}],
                "users": [{"name": "nobody", "user": {}}],
                "contexts": [{"name": "stand-in", "context": {"cluster": "stand-in", "user": "nobody"}}],
                "current-context": "stand-in",
            }
        )
    )
    command = [tool("kubectl"), "apply", "--dry-run=client", "--validate=false", "--kubeconfig", kubeconfig]
    result = run([*command, "--cache-dir", tmp_path / "kube-cache", *source])
    return result.stdout


def test_install_yaml_is_the_chart_with_default_values() -> None:
    rendered = run(
        [
            tool("helm"),
            "template",
            "memory-operator",
            "charts/memory-operator",
            "--namespace",
            NAMESPACE,
            "--include-crds",
        ]
    ).stdout
    installed = INSTALL.read_text()
    assert installed.endswith(rendered), "manifests/install.yaml is stale: run scripts/generate-install.sh"


def test_install_yaml_creates_its_namespace_first() -> None:
    objects = [d for d in yaml.safe_load_all(INSTALL.read_text()) if d]
    assert objects[0]["kind"] == "Namespace" and objects[0]["metadata"]["name"] == NAMESPACE
    assert objects[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    namespaced = [o for o in objects if o["kind"] in {"Deployment", "ServiceAccount", "Service"}]
    assert namespaced and all(o["metadata"]["namespace"] == NAMESPACE for o in namespaced)
    for obj in objects:
        kubernetes_validate.validate(obj, "1.34", strict=True)


def test_kubectl_applies_install_yaml(api_server: str, tmp_path: Path) -> None:
    output = kubectl_dry_run(api_server, tmp_path, "-f", str(INSTALL))
    objects = [d for d in yaml.safe_load_all(INSTALL.read_text()) if d]
    lines = output.strip().splitlines()
    assert len(lines) == len(objects)
    assert all(line.endswith("created (dry run)") for line in lines), output
    assert "deployment.apps/memory-operator created (dry run)" in lines


def test_kustomization_builds_the_same_objects() -> None:
    built = [d for d in yaml.safe_load_all(run([tool("kubectl"), "kustomize", "manifests/"]).stdout) if d]
    installed = [d for d in yaml.safe_load_all(INSTALL.read_text()) if d]
    key = lambda o: (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])  # noqa: E731
    assert sorted(built, key=key) == sorted(installed, key=key)


def test_kubectl_applies_the_kustomization(api_server: str, tmp_path: Path) -> None:
    output = kubectl_dry_run(api_server, tmp_path, "-k", "manifests/")
    assert (
        "customresourcedefinition.apiextensions.k8s.io/memorystores.memory-operator.io created (dry run)"
        in output
    )
