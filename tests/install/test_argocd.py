"""manifests/argocd/: the health checks run as Argo CD runs them, and the Applications are well formed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import LuaRuntime

from install.helpers import ROOT

ARGOCD = ROOT / "manifests" / "argocd"


def health(script: Path, obj: dict[str, Any]) -> tuple[str, str]:
    """Runs a health script the way Argo CD does: the object as the Lua global `obj`, a table returned."""
    lua = LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(script.read_text())
    return result["status"], result["message"]


def store(status: dict[str, Any] | None, generation: int = 2) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "memory-operator.io/v1alpha1",
        "kind": "MemoryStore",
        "metadata": {"name": "agents", "namespace": "team-a", "generation": generation},
        "spec": {},
    }
    if status is not None:
        obj["status"] = status
    return obj


def ready(phase: str, message: str = "", observed: int = 2) -> dict[str, Any]:
    return {
        "phase": phase,
        "observedGeneration": observed,
        "conditions": [
            {"type": "Ready", "status": "True" if phase == "Ready" else "False", "message": message}
        ],
    }


@pytest.mark.parametrize(
    ("status", "expected", "in_message"),
    [
        (None, "Progressing", "Waiting for the operator"),
        ({}, "Progressing", "Waiting for the operator"),
        (ready("Ready", "3/3 Qdrant nodes ready"), "Healthy", "3/3 Qdrant nodes ready"),
        (ready("Ready"), "Healthy", "ready"),
        (ready("Pending"), "Progressing", "Pending"),
        (ready("Provisioning", "waiting for volumes"), "Progressing", "waiting for volumes"),
        (ready("Degraded", "1/3 Qdrant nodes ready"), "Degraded", "1/3 Qdrant nodes ready"),
        (ready("Failed", "image pull failed"), "Degraded", "image pull failed"),
        (ready("Paused", observed=1), "Suspended", "paused"),
        (ready("Ready", observed=1), "Progressing", "generation 2"),
        ({"phase": "Ready"}, "Progressing", "generation 2"),
        (ready("Failed", observed=1), "Progressing", "generation 2"),
        (ready("Exploded"), "Unknown", "Exploded"),
    ],
)
def test_memory_store_health(status: dict[str, Any] | None, expected: str, in_message: str) -> None:
    state, message = health(ARGOCD / "health-memorystore.lua", store(status))
    assert state == expected
    assert in_message in message


def test_memory_store_health_without_generation() -> None:
    obj = store(ready("Ready"))
    del obj["metadata"]["generation"]
    assert health(ARGOCD / "health-memorystore.lua", obj)[0] == "Healthy"


def backup(status: dict[str, Any] | None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "memory-operator.io/v1alpha1",
        "kind": "MemoryBackup",
        "metadata": {"name": "agents-now", "namespace": "team-a", "generation": 1},
        "spec": {"storeRef": {"name": "agents"}},
    }
    if status is not None:
        obj["status"] = status
    return obj


@pytest.mark.parametrize(
    ("status", "expected", "in_message"),
    [
        (None, "Progressing", "Waiting"),
        ({}, "Progressing", "Waiting"),
        ({"phase": "Pending"}, "Progressing", "pending"),
        ({"phase": "Running", "startTime": "2025-01-01T00:00:00Z"}, "Progressing", "running"),
        (
            {"phase": "Completed", "location": "s3://bucket/agents/agents-now/"},
            "Healthy",
            "s3://bucket/agents",
        ),
        ({"phase": "Completed"}, "Healthy", "completed"),
        ({"phase": "Failed", "error": "bucket not found"}, "Degraded", "bucket not found"),
        ({"phase": "Failed"}, "Degraded", "no error reported"),
    ],
)
def test_memory_backup_health(status: dict[str, Any] | None, expected: str, in_message: str) -> None:
    state, message = health(ARGOCD / "health-memorybackup.lua", backup(status))
    assert state == expected
    assert in_message in message


def test_argocd_cm_snippet_holds_the_same_scripts() -> None:
    config_map = yaml.safe_load((ARGOCD / "argocd-cm.yaml").read_text())
    assert config_map["metadata"] == {
        "name": "argocd-cm",
        "namespace": "argocd",
        "labels": {"app.kubernetes.io/name": "argocd-cm", "app.kubernetes.io/part-of": "argocd"},
    }
    data = config_map["data"]
    store_key = "resource.customizations.health.memory-operator.io_MemoryStore"
    backup_key = "resource.customizations.health.memory-operator.io_MemoryBackup"
    assert set(data) == {store_key, backup_key}
    assert data[store_key] == (ARGOCD / "health-memorystore.lua").read_text()
    assert data[backup_key] == (ARGOCD / "health-memorybackup.lua").read_text()


def application(name: str) -> dict[str, Any]:
    app = yaml.safe_load((ARGOCD / name).read_text())
    assert app["apiVersion"] == "argoproj.io/v1alpha1" and app["kind"] == "Application"
    assert app["metadata"]["namespace"] == "argocd"
    assert set(app["spec"]) >= {"project", "source", "destination", "syncPolicy"}
    return app


def test_operator_application_installs_the_chart() -> None:
    app = application("memory-operator-application.yaml")
    source = app["spec"]["source"]
    assert source["path"] == "charts/memory-operator"
    assert (ROOT / source["path"] / "Chart.yaml").is_file()
    assert app["spec"]["destination"]["namespace"] == "memory-operator"
    assert "ServerSideApply=true" in app["spec"]["syncPolicy"]["syncOptions"]
    assert "CreateNamespace=true" in app["spec"]["syncPolicy"]["syncOptions"]


def test_store_application_takes_the_examples() -> None:
    app = application("memory-store-application.yaml")
    source = app["spec"]["source"]
    assert source["path"] == "manifests/examples"
    assert "store-minimal.yaml" in source["directory"]["include"]
    assert app["spec"]["syncPolicy"]["automated"]["prune"] is False
