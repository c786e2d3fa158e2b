"""The CRDs survive every way of removing the operator: deleting a CRD deletes every store of its kind.

In every install path (the chart's crds/ folder, its templated CRDs, manifests/install.yaml and its
kustomization) each CRD tells Argo CD neither to prune it nor to delete it with its Application; the
templated ones also tell Helm to keep them on uninstall. No kind is in the `all` category, so
`kubectl delete all --all` deletes no store.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from install.helpers import CHART, ROOT, kinds, render, run, tool

GROUP = "memory-operator.io"
OUR_CRDS = {
    f"memorystores.{GROUP}",
    f"memorypolicies.{GROUP}",
    f"memorybackups.{GROUP}",
    f"memoryclients.{GROUP}",
    f"memoryerasures.{GROUP}",
}
KEEP = "helm.sh/resource-policy"
ARGOCD_SYNC_OPTIONS = "argocd.argoproj.io/sync-options"


def ours(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = [c for c in kinds(objects, "CustomResourceDefinition") if c["spec"]["group"] == GROUP]
    assert {c["metadata"]["name"] for c in found} == OUR_CRDS
    return found


def sync_options(crd: dict[str, Any]) -> set[str]:
    value = (crd["metadata"].get("annotations") or {}).get(ARGOCD_SYNC_OPTIONS, "")
    return {option.strip() for option in value.split(",") if option.strip()}


def chart_crds_folder() -> list[dict[str, Any]]:
    return ours(render("--include-crds"))


def chart_templated() -> list[dict[str, Any]]:
    return ours(render("--skip-crds", "--set", "crds.templated=true"))


def install_yaml() -> list[dict[str, Any]]:
    text = (ROOT / "manifests" / "install.yaml").read_text()
    return ours([doc for doc in yaml.safe_load_all(text) if doc])


def kustomize() -> list[dict[str, Any]]:
    output = run([tool("kubectl"), "kustomize", ROOT / "manifests"]).stdout
    return ours([doc for doc in yaml.safe_load_all(output) if doc])


def crds_files() -> list[dict[str, Any]]:
    return ours([yaml.safe_load(p.read_text()) for p in sorted((ROOT / "crds").glob("*.yaml"))])


PATHS = [
    pytest.param(chart_crds_folder, id="chart-crds-folder"),
    pytest.param(chart_templated, id="chart-templated"),
    pytest.param(install_yaml, id="install.yaml"),
    pytest.param(kustomize, id="kustomize"),
    pytest.param(crds_files, id="crds"),
]


@pytest.mark.parametrize("crds", PATHS)
def test_argo_cd_neither_prunes_nor_deletes_a_crd(crds: Any) -> None:
    for crd in crds():
        assert {"Prune=false", "Delete=false"} <= sync_options(crd), crd["metadata"]["name"]


@pytest.mark.parametrize("crds", PATHS)
def test_no_kind_is_in_the_all_category(crds: Any) -> None:
    for crd in crds():
        categories = crd["spec"]["names"].get("categories", [])
        assert "all" not in categories, crd["metadata"]["name"]
        assert "memory" in categories  # `kubectl get memory` still lists every kind


def test_helm_keeps_templated_crds_on_uninstall() -> None:
    for crd in chart_templated():
        assert crd["metadata"]["annotations"][KEEP] == "keep"
    for crd in ours(render("--skip-crds", "--set", "crds.templated=true", "--set", "crds.keep=false")):
        assert KEEP not in crd["metadata"]["annotations"]
        assert {"Prune=false", "Delete=false"} <= sync_options(crd)  # Argo CD still keeps them


def test_the_argo_cd_application_installs_the_crds_it_will_not_delete() -> None:
    """The shipped Application renders the chart with its crds/ folder: those are the protected CRDs."""
    app = yaml.safe_load((ROOT / "manifests" / "argocd" / "memory-operator-application.yaml").read_text())
    assert app["spec"]["source"]["path"] == str(CHART.relative_to(ROOT))
    assert not app["spec"]["source"]["helm"].get("skipCrds", False)
    assert all("Delete=false" in sync_options(crd) for crd in chart_crds_folder())
