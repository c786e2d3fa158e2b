"""The upstream OpenMemory server: one pod, its SQLite database and mem0 history on a claim.

Its contract (mem0's `openmemory/api`): uvicorn on 8765; `QDRANT_HOST`/`QDRANT_PORT` and no setting for a
Qdrant API key (so Qdrant runs without one and the NetworkPolicy guards it); `USER` is the default user;
`LLM_*`, `EMBEDDER_*` and `OPENAI_API_KEY` (its categorisation always calls OpenAI); `DATABASE_URL`.
It has no health endpoint, and `GET /api/v1/config` writes a config row, so the probes use the TCP port
and `/docs`.
"""

from __future__ import annotations

from typing import Any

from memory_operator import env
from memory_operator.api.common import SecretKeyRef
from memory_operator.api.store import MemoryStore, ModelProviderSpec
from memory_operator.images import DEFAULT_OPENMEMORY_IMAGE
from memory_operator.render import meta, names
from memory_operator.render.meta import Manifest

# Both flavors answer on the same Service, so clients never depend on the flavor.
from memory_operator.render.server import selector, service

DATA_DIR = "/data"
DATABASE_URL = f"sqlite:///{DATA_DIR}/openmemory.db"
DATA_CLAIM_SIZE = "1Gi"


def _model_env(spec: ModelProviderSpec | None, prefix: str) -> list[dict[str, Any]]:
    if spec is None:
        return []
    variables = [
        meta.env_value(f"{prefix}_PROVIDER", spec.provider),
        meta.env_value(f"{prefix}_MODEL", spec.model),
    ]
    if spec.base_url:
        variables.append(meta.env_value(f"{prefix}_BASE_URL", spec.base_url))
    if spec.api_key_secret_ref:
        variables.append(meta.env_secret_ref(f"{prefix}_API_KEY", spec.api_key_secret_ref))
    return variables


def openai_key_ref(store: MemoryStore) -> SecretKeyRef | None:
    """The key of whichever configured model is OpenAI's (the LLM's first)."""
    for spec in (store.spec.server.llm, store.spec.server.embedder):
        if spec is not None and spec.provider == "openai" and spec.api_key_secret_ref:
            return spec.api_key_secret_ref
    return None


def _env(store: MemoryStore) -> list[dict[str, Any]]:
    server = store.spec.server
    variables = [
        meta.env_value("USER", server.user),
        meta.env_value("QDRANT_HOST", names.qdrant_host(store)),
        meta.env_value("QDRANT_PORT", env.QDRANT_HTTP_PORT),
        meta.env_value("DATABASE_URL", DATABASE_URL),
        # mem0's history database goes to the claim too.
        meta.env_value("MEM0_DIR", f"{DATA_DIR}/mem0"),
        meta.env_value("HOME", DATA_DIR),
        meta.env_value("MEM0_TELEMETRY", "false"),
        meta.env_value("PYTHONDONTWRITEBYTECODE", "1"),
        *_model_env(server.llm, "LLM"),
        *_model_env(server.embedder, "EMBEDDER"),
    ]
    key = openai_key_ref(store)
    if key is not None:
        variables.append(meta.env_secret_ref("OPENAI_API_KEY", key))
    return variables


def _container(store: MemoryStore, images: meta.Images) -> dict[str, Any]:
    server = store.spec.server
    return {
        "name": "openmemory",
        "image": images.default_or_given(server.image, DEFAULT_OPENMEMORY_IMAGE),
        "imagePullPolicy": "IfNotPresent",
        "ports": [meta.container_port("http", env.SERVER_PORT)],
        "env": _env(store),
        "resources": meta.resources(server.resources),
        "startupProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 5, "failureThreshold": 60},
        "livenessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 10, "failureThreshold": 6},
        # /docs is static: it proves the app answers without writing anything.
        "readinessProbe": meta.http_probe(
            "/docs", "http", periodSeconds=10, timeoutSeconds=5, failureThreshold=3
        ),
        "volumeMounts": [{"name": "data", "mountPath": DATA_DIR}, {"name": "tmp", "mountPath": "/tmp"}],
        "securityContext": meta.container_security_context(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def deployment(store: MemoryStore, held: bool = False, images: meta.Images = meta.NO_IMAGES) -> Manifest:
    """The OpenMemory Deployment; `held` runs no replica (the store is being restored)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta.metadata(
            store, names.server_deployment_name(store), meta.SERVER, meta.SERVER_COMPONENT
        ),
        "spec": {
            # SQLite on a ReadWriteOnce claim: one pod, and the old one gone before the new one starts.
            "replicas": 0 if held else min(store.spec.server.replicas, 1),
            "selector": {"matchLabels": selector(store)},
            "strategy": {"type": "Recreate"},
            "template": {
                "metadata": meta.pod_metadata(
                    meta.labels(store, meta.SERVER, meta.SERVER_COMPONENT), store.spec.server.pod
                ),
                "spec": meta.placed(
                    {
                        "automountServiceAccountToken": False,
                        "enableServiceLinks": False,
                        "securityContext": meta.pod_security_context(meta.OPERATOR_UID),
                        "containers": [_container(store, images)],
                        "volumes": [
                            {
                                "name": "data",
                                "persistentVolumeClaim": {
                                    "claimName": names.openmemory_data_claim_name(store)
                                },
                            },
                            meta.empty_dir("tmp", "1Gi"),
                        ],
                    },
                    store.spec.server.pod,
                    selector(store),
                    meta.pull_secrets(store, images),
                ),
            },
        },
    }


def data_claim(store: MemoryStore) -> Manifest:
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": DATA_CLAIM_SIZE}},
    }
    storage_class = store.spec.vector_store.storage.storage_class_name
    if storage_class:
        spec["storageClassName"] = storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta.metadata(
            store, names.openmemory_data_claim_name(store), meta.SERVER, meta.SERVER_COMPONENT
        ),
        "spec": spec,
    }


def render(store: MemoryStore, held: bool = False, images: meta.Images = meta.NO_IMAGES) -> list[Manifest]:
    return [data_claim(store), service(store), deployment(store, held, images)]
