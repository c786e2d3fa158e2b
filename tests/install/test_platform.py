"""What a platform team sets in the chart: its own registry and pull secrets, the Prometheus that may
scrape Qdrant, Kubernetes' default roles for our kinds, the supported Kubernetes versions and upgrades.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from install.helpers import CHART, ROOT, helm_template_args, kinds, render, run
from memory_operator import deployment
from memory_operator.api import MemoryStore
from memory_operator.render import Credentials, Directives, RenderSettings, Scraper, render_store

REGISTRY = "registry.corp.example/mirror"
PRIVATE = (
    "--set", f"imageRegistry={REGISTRY}",
    "--set", "stores.imagePullSecrets[0].name=mirror-pull",
)  # fmt: skip
# The oldest Kubernetes the operator supports, and the one its end-to-end tests run on.
OLDEST_SUPPORTED = "1.31"
TESTED = "1.34.4"


def operator_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = kinds(objects, "Deployment")
    return dict(found["spec"]["template"]["spec"]["containers"][0])


def operator_env(objects: list[dict[str, Any]]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in operator_container(objects)["env"] if "value" in e}


def operator_render_settings(
    objects: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> RenderSettings:
    """What the operator the chart deploys renders with: its own flag parser reading the chart's env."""
    variables = operator_env(objects)
    for name in (
        deployment.IMAGE_REGISTRY,
        deployment.IMAGE_PULL_SECRETS,
        deployment.METRICS_NAMESPACE_SELECTOR,
        deployment.METRICS_POD_SELECTOR,
    ):
        if name in variables:
            monkeypatch.setenv(name, variables[name])
        else:
            monkeypatch.delenv(name, raising=False)
    parser = argparse.ArgumentParser()
    deployment.add_arguments(parser, from_env=True)
    return RenderSettings(
        job_image=variables["MEMORY_OPERATOR_JOB_IMAGE"], **deployment.render_settings(parser.parse_args([]))
    )


def every_pod(settings: RenderSettings) -> list[tuple[str, dict[str, Any]]]:
    store = MemoryStore.model_validate(
        {
            "metadata": {"name": "mem", "namespace": "agents"},
            "spec": {
                "vectorStore": {"replicas": 3},
                "backup": {"destination": {"pvc": {}}},
                "bootstrap": {"fromBackup": {"name": "nightly-1"}},
            },
        }
    )
    keys = Credentials(api_key="a", read_only_api_key="b", qdrant_api_key="c")
    directives = Directives(backups=("mem-1",), restore=True, hold_server=True)
    pods = []
    for manifest in render_store(store, [], settings, keys, directives):
        spec = manifest.get("spec", {})
        if manifest["kind"] in ("StatefulSet", "Deployment", "Job"):
            pods.append((manifest["metadata"]["name"], spec["template"]["spec"]))
    return pods


# --- images -------------------------------------------------------------------------------------


def test_one_registry_setting_moves_every_image(monkeypatch: pytest.MonkeyPatch) -> None:
    objects = render(*PRIVATE)
    container = operator_container(objects)
    assert container["image"].startswith(f"{REGISTRY}/memory-operator/memory-operator:")
    variables = operator_env(objects)
    assert variables["MEMORY_OPERATOR_JOB_IMAGE"] == container["image"]
    settings = operator_render_settings(objects, monkeypatch)
    pods = every_pod(settings)
    assert {name for name, _ in pods} == {"mem-qdrant", "mem-server", "mem-1-backup", "mem-restore"}
    for name, pod in pods:
        for each in pod["containers"]:
            assert each["image"].startswith(REGISTRY + "/"), (name, each["image"])
        assert pod["imagePullSecrets"] == [{"name": "mirror-pull"}], name


def test_without_a_registry_nothing_moves(monkeypatch: pytest.MonkeyPatch) -> None:
    objects = render()
    assert not {deployment.IMAGE_REGISTRY, deployment.IMAGE_PULL_SECRETS} & set(operator_env(objects))
    for name, pod in every_pod(operator_render_settings(objects, monkeypatch)):
        assert "imagePullSecrets" not in pod, name
        for each in pod["containers"]:
            assert not each["image"].startswith(REGISTRY), name


def test_jobs_image_repository_moves_too() -> None:
    objects = render(*PRIVATE, "--set", "jobs.image.repository=ghcr.io/memory-operator/jobs")
    assert operator_env(objects)["MEMORY_OPERATOR_JOB_IMAGE"].startswith(f"{REGISTRY}/memory-operator/jobs:")


@pytest.mark.parametrize("registry", ["https://registry.example.com", "Registry.example.com", "reg.example/"])
def test_a_registry_that_is_not_one_is_refused(registry: str) -> None:
    result = run(helm_template_args("--set", f"imageRegistry={registry}"), check=False)
    assert result.returncode != 0 and "/imageRegistry" in result.stderr


# --- monitoring ---------------------------------------------------------------------------------


def test_the_scraper_reaches_the_operator_and_qdrant_monitors_need_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    objects = render("-f", str(CHART / "ci" / "monitoring-values.yaml"))
    settings = operator_render_settings(objects, monkeypatch)
    assert settings.metrics_scraper == Scraper(
        namespace_labels={"kubernetes.io/metadata.name": "monitoring"},
        pod_labels={"app.kubernetes.io/name": "prometheus"},
    )
    result = run(
        helm_template_args(
            "--set", "metrics.qdrantPodMonitors.enabled=true",
            "--set", "metrics.qdrantPodMonitors.stores[0].name=agents",
            "--set", "metrics.qdrantPodMonitors.stores[0].namespace=agents",
        ),
        check=False,
    )  # fmt: skip
    assert result.returncode != 0 and "/metrics/scraper" in result.stderr


def test_the_monitoring_example_names_the_secrets_the_operator_generates() -> None:
    from memory_operator.render import names

    values = yaml.safe_load((CHART / "ci" / "monitoring-values.yaml").read_text())
    monitors = {
        (m["metadata"]["namespace"], m["metadata"]["name"]): m
        for m in kinds(render("-f", str(CHART / "ci" / "monitoring-values.yaml")), "PodMonitor")
    }
    for kind, secret_name in (
        ("serverPodMonitors", names.credentials_secret_name),
        ("qdrantPodMonitors", names.qdrant_secret_name),
    ):
        for entry in values["metrics"][kind]["stores"]:
            store = MemoryStore.model_validate(
                {"metadata": {"name": entry["name"], "namespace": entry["namespace"]}}
            )
            suffix = "memory-server" if kind == "serverPodMonitors" else "qdrant"
            monitor = monitors[(entry["namespace"], f"{entry['name']}-{suffix}")]
            credentials = monitor["spec"]["podMetricsEndpoints"][0]["authorization"]["credentials"]
            assert credentials["name"] == secret_name(store)


# --- Kubernetes' default roles -------------------------------------------------------------------

OUR_KINDS = {"memorystores", "memorypolicies", "memorybackups", "memoryclients"}


def aggregated(objects: list[dict[str, Any]], to: str) -> list[dict[str, Any]]:
    label = f"rbac.authorization.k8s.io/aggregate-to-{to}"
    return [r for r in kinds(objects, "ClusterRole") if r["metadata"]["labels"].get(label) == "true"]


def granted(roles: list[dict[str, Any]]) -> dict[str, set[str]]:
    verbs: dict[str, set[str]] = {}
    for role in roles:
        for rule in role["rules"]:
            assert rule["apiGroups"] == ["memory-operator.io"]
            for resource in rule["resources"]:
                verbs.setdefault(resource, set()).update(rule["verbs"])
    return verbs


def test_view_edit_and_admin_users_get_our_kinds() -> None:
    objects = render()
    read = {"get", "list", "watch"}
    write = {"create", "update", "patch", "delete", "deletecollection"}
    view = granted(aggregated(objects, "view"))
    assert view == {**dict.fromkeys(OUR_KINDS, read), **{f"{k}/status": {"get"} for k in OUR_KINDS}}
    for role in ("edit", "admin"):
        assert {k: v for k, v in granted(aggregated(objects, role)).items() if "memoryerasures" not in k} == {
            **dict.fromkeys(OUR_KINDS, read | write),
            **{f"{k}/status": {"get"} for k in OUR_KINDS},  # status is the operator's to write
        }


def test_erasures_are_filed_by_editors_deleted_by_admins_and_hidden_from_viewers() -> None:
    objects = render()
    filed = {"get", "list", "watch", "create", "update", "patch"}
    assert "memoryerasures" not in granted(aggregated(objects, "view")), "subject ids are personal data"
    edit = granted(aggregated(objects, "edit"))
    assert (edit["memoryerasures"], edit["memoryerasures/status"]) == (filed, {"get"})
    admin = granted(aggregated(objects, "admin"))
    assert admin["memoryerasures"] == filed | {"delete", "deletecollection"}


def test_the_default_roles_can_be_left_alone() -> None:
    assert aggregated(render("--set", "rbac.aggregateToDefaultRoles=false"), "view") == []


# --- supported Kubernetes versions ---------------------------------------------------------------


def test_the_chart_requires_the_supported_kubernetes_versions() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == f">={OLDEST_SUPPORTED}.0-0"
    for version, accepted in (
        ("1.30.9", False),
        (f"{OLDEST_SUPPORTED}.0", True),
        (TESTED, True),
        ("1.36.0", True),
    ):
        result = run(helm_template_args("--kube-version", version), check=False)
        assert (result.returncode == 0) == accepted, (version, result.stderr)
        if not accepted:
            assert "kubeVersion" in result.stderr or "incompatible" in result.stderr


def test_the_end_to_end_control_plane_runs_a_supported_version() -> None:
    go_mod = (ROOT / "tests" / "controlplane" / "go.mod").read_text()
    (version,) = re.findall(r"k8s\.io/kubernetes v(\d+\.\d+\.\d+)", go_mod)
    assert version == TESTED


DOCUMENTS = [ROOT / "README.md", ROOT / "docs" / "install.md", CHART / "README.md"]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(Path(p).relative_to(ROOT)))
def test_every_document_states_the_same_supported_versions(document: Path) -> None:
    text = document.read_text()
    stated = set(re.findall(r"Kubernetes (1\.\d+) or newer", text))
    assert stated == {OLDEST_SUPPORTED}, stated
    assert not re.findall(r"kubectl (1\.\d+) or newer", text.replace(f"kubectl {OLDEST_SUPPORTED}", ""))


def test_the_renderer_tests_check_the_same_oldest_version() -> None:
    from render.test_kubernetes_schemas import OLDEST_SUPPORTED as RENDERED

    assert str(RENDERED) == OLDEST_SUPPORTED


# --- upgrades -----------------------------------------------------------------------------------


def test_the_docs_never_recommend_reuse_values() -> None:
    """`helm upgrade --reuse-values` keeps the old release's values without the new chart's defaults,
    so a key a release adds is missing and the strict schema refuses the upgrade: the docs recommend
    `--reset-then-reuse-values` and say why."""
    for document in [ROOT / "README.md", CHART / "README.md", *(ROOT / "docs").glob("*.md")]:
        for line in document.read_text().splitlines():
            if line.strip().startswith(("helm ", "$ helm ")):  # a command to run
                assert "--reuse-values" not in line, (document.name, line)
    operations = (ROOT / "docs" / "operations.md").read_text()
    assert "--reset-then-reuse-values" in operations
    assert "--reuse-values" in operations  # named once, to say why not
