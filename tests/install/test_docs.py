"""docs/: the generated API reference is current, links resolve, and the runbook keeps its escapes."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from install.helpers import ROOT

DOCS = ROOT / "docs"
OWN_DOCS = [
    "install.md",
    "configuration.md",
    "operations.md",
    "security.md",
    "architecture.md",
    "api.md",
    "clients.md",
    "erasure.md",
    "tls.md",
]
EXAMPLES = {
    "store-minimal.yaml",
    "store-production.yaml",
    "store-openmemory.yaml",
    "policy-retention.yaml",
    "backup-on-demand.yaml",
    "store-restore.yaml",
    "store-tls.yaml",
}


def test_api_reference_is_generated_from_the_models() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "generate-api-docs.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr


def test_api_reference_covers_every_field() -> None:
    from memory_operator.api import MemoryBackup, MemoryClient, MemoryErasure, MemoryPolicy, MemoryStore

    text = (DOCS / "api.md").read_text()
    for kind in (MemoryStore, MemoryPolicy, MemoryBackup, MemoryClient, MemoryErasure):
        for part in ("spec", "status"):
            model = kind.model_fields[part].annotation
            fields = getattr(model, "model_fields", None) or next(
                a.model_fields for a in getattr(model, "__args__", ()) if hasattr(a, "model_fields")
            )
            for name, info in fields.items():
                assert f"| `{info.alias or name}` |" in text, (kind.__name__, part, name)


@pytest.mark.parametrize("name", OWN_DOCS)
def test_relative_links_resolve(name: str) -> None:
    text = re.sub(r"`[^`\n]*`", "", (DOCS / name).read_text())  # code spans hold no links
    for target in re.findall(r"\[[^\]]*\]\(([^)#:]+)(?:#[^)]*)?\)", text):
        assert (DOCS / target).resolve().exists() or target == "retention.md", f"{name} links to {target}"


@pytest.mark.parametrize("name", OWN_DOCS)
def test_examples_are_named_as_they_exist(name: str) -> None:
    mentioned = set(re.findall(r"[\w-]+\.yaml", (DOCS / name).read_text()))
    example_like = {m for m in mentioned if m.startswith(("store-", "policy-", "backup-"))}
    assert example_like <= EXAMPLES


def test_runbook_has_the_finalizer_escape() -> None:
    text = (DOCS / "operations.md").read_text()
    assert (
        'kubectl -n agents patch memorystore agents --type=merge -p \'{"metadata":{"finalizers":null}}\''
        in text
    )


def test_architecture_has_one_mermaid_diagram() -> None:
    assert (DOCS / "architecture.md").read_text().count("```mermaid") == 1


def test_install_covers_every_path() -> None:
    text = (DOCS / "install.md").read_text()
    assert "helm install memory-operator charts/memory-operator" in text
    assert "kubectl apply --server-side -f manifests/install.yaml" in text
    assert "kubectl apply --server-side -k manifests/" in text
    assert "manifests/argocd/argocd-cm.yaml" in text


def test_security_rbac_table_is_the_operators_permissions() -> None:
    from memory_operator.controller import permissions

    text = (DOCS / "security.md").read_text()
    table = text.split("<!-- permissions:begin -->")[1].split("<!-- permissions:end -->")[0]
    rows = [line.strip("|").split("|") for line in table.strip().splitlines()[2:]]
    documented = {
        (group.strip().strip('"'), resource.strip(), verb.strip())
        for group, resource, verbs, _ in rows
        for verb in verbs.split(",")
    }
    declared = permissions.NAMESPACED + permissions.DISCOVERY + permissions.ALL_NAMESPACES
    assert documented == permissions.granted(*declared)
