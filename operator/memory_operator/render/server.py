"""The builtin memory server: a stateless, authenticated Deployment and its Service."""

from __future__ import annotations

import posixpath
from typing import Any

import yaml

from memory_operator import env, labels
from memory_operator import images as images_
from memory_operator.api.store import MemoryStore, ModelProviderSpec
from memory_operator.render import clients as clients_
from memory_operator.render import meta, names
from memory_operator.render import tls as tls_
from memory_operator.render.credentials import QDRANT_KEY
from memory_operator.render.meta import Manifest

# mem0's history database and the model caches need a writable home; the root file system is not.
HOME_DIR = env.SCRATCH_DIR
MEM0_DIR = f"{env.SCRATCH_DIR}/mem0"
HF_HOME = f"{env.SCRATCH_DIR}/huggingface"
CONFIG_VOLUME = "config"
CONFIG_KEY = posixpath.basename(env.SERVER_CONFIG_PATH)


def pod_labels(store: MemoryStore) -> dict[str, str]:
    return meta.labels(store, meta.SERVER, meta.SERVER_COMPONENT)


def selector(store: MemoryStore) -> dict[str, str]:
    return meta.selector_labels(store, meta.SERVER, meta.SERVER_COMPONENT)


def client_key_env(store: MemoryStore) -> list[dict[str, Any]]:
    """The client API keys, from the generated Secret or the user's."""
    auth = store.spec.auth
    secret = names.client_keys_secret_name(store)
    return [
        meta.env_secret(env.API_KEY, secret, auth.api_key_key),
        # A user's Secret may hold no read-only key.
        meta.env_secret(
            env.READ_ONLY_API_KEY, secret, auth.read_only_api_key_key, optional=bool(auth.existing_secret)
        ),
    ]


def qdrant_env(store: MemoryStore) -> list[dict[str, Any]]:
    """Where Qdrant is, its API key and the collection: what every process that talks to it needs."""
    return [
        meta.env_value(env.QDRANT_URL, names.qdrant_url(store)),
        meta.env_secret(env.QDRANT_API_KEY, names.qdrant_secret_name(store), QDRANT_KEY),
        meta.env_value(env.COLLECTION, names.memory_collection(store)),
    ]


def _model_env(
    spec: ModelProviderSpec, provider: str, model: str, api_key: str, base_url: str
) -> list[dict[str, Any]]:
    variables = [meta.env_value(provider, spec.provider), meta.env_value(model, spec.model)]
    if spec.base_url:
        variables.append(meta.env_value(base_url, spec.base_url))
    if spec.api_key_secret_ref:
        variables.append(meta.env_secret_ref(api_key, spec.api_key_secret_ref))
    return variables


def model_env(store: MemoryStore) -> list[dict[str, Any]]:
    server = store.spec.server
    variables: list[dict[str, Any]] = []
    if server.embedder is not None:
        variables += _model_env(
            server.embedder,
            env.EMBEDDER_PROVIDER,
            env.EMBEDDER_MODEL,
            env.EMBEDDER_API_KEY,
            env.EMBEDDER_BASE_URL,
        )
        variables.append(meta.env_value(env.EMBEDDER_DIMS, server.embedder.dims))
    else:
        # The local all-MiniLM-L6-v2 ships in the image: never reach for the Hugging Face Hub.
        variables += [meta.env_value("HF_HUB_OFFLINE", "1"), meta.env_value("TRANSFORMERS_OFFLINE", "1")]
    if server.llm is not None:
        variables += _model_env(
            server.llm, env.LLM_PROVIDER, env.LLM_MODEL, env.LLM_API_KEY, env.LLM_BASE_URL
        )
    return variables


def config_file(store: MemoryStore) -> str | None:
    """The server's YAML config file (the format `memory_operator.server.config` reads); None if unset."""
    config = store.spec.server.config
    if config is None:
        return None
    # Sorted keys: the same spec always gives the same bytes, hence the same checksum.
    return yaml.safe_dump(config.wire(), sort_keys=True, allow_unicode=True)


def config_map(store: MemoryStore) -> Manifest | None:
    content = config_file(store)
    if content is None:
        return None
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta.metadata(store, names.server_config_name(store), meta.SERVER, meta.SERVER_COMPONENT),
        "data": {CONFIG_KEY: content},
    }


def _env(store: MemoryStore, clients: bool) -> list[dict[str, Any]]:
    variables = [
        *qdrant_env(store),
        *client_key_env(store),
        *model_env(store),
        meta.env_value("HOME", HOME_DIR),
        meta.env_value("MEM0_DIR", MEM0_DIR),
        meta.env_value("HF_HOME", HF_HOME),
        meta.env_value("MEM0_TELEMETRY", "false"),
        meta.env_value("PYTHONDONTWRITEBYTECODE", "1"),
    ]
    if store.spec.server.config is not None:
        variables.append(meta.env_value(env.SERVER_CONFIG_FILE, env.SERVER_CONFIG_PATH))
    if store.spec.server.cors is not None:
        origins = ",".join(store.spec.server.cors.allowed_origins)
        variables.append(meta.env_value(env.CORS_ALLOWED_ORIGINS, origins))
    if clients:
        variables.append(meta.env_value(env.CLIENTS_FILE, env.CLIENTS_PATH))
    return variables + tls_.server_env(store)


def _container(store: MemoryStore, images: meta.Images, clients: bool) -> dict[str, Any]:
    server = store.spec.server
    mounts: list[dict[str, Any]] = [
        {"name": "scratch", "mountPath": env.SCRATCH_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    if server.config is not None:
        mounts.append({"name": CONFIG_VOLUME, "mountPath": env.CONFIG_DIR, "readOnly": True})
    if clients:
        mounts.append(clients_.volume_mount())
    mounts += tls_.server_volumes(store)[1]
    ports = [meta.container_port("http", env.SERVER_PORT)]
    # The probes: on the API's port (over HTTPS with TLS), or under mutual TLS on a plain port of
    # their own, since the kubelet presents no client certificate.
    probe_port, scheme = "http", tls_.probe_scheme(store)
    if tls_.mutual(store):
        ports.append(meta.container_port("health", env.HEALTH_PORT))
        probe_port, scheme = "health", None
    return {
        "name": "server",
        "image": images.default_or_given(server.image, images_.DEFAULT_BUILTIN_SERVER_IMAGE),
        "imagePullPolicy": "IfNotPresent",
        "args": ["server", "--port", str(env.SERVER_PORT)],
        # `http` serves the API and the (authenticated) Prometheus metrics at /metrics.
        "ports": ports,
        "env": _env(store, clients),
        "resources": meta.resources(server.resources),
        # Loading the embedding model takes a while on a small CPU share.
        "startupProbe": meta.http_probe(
            "/healthz", probe_port, scheme, periodSeconds=5, timeoutSeconds=3, failureThreshold=60
        ),
        "livenessProbe": meta.http_probe(
            "/healthz", probe_port, scheme, periodSeconds=10, timeoutSeconds=5, failureThreshold=6
        ),
        # /readyz fails while Qdrant or the collection is missing: no traffic to a server that cannot answer.
        "readinessProbe": meta.http_probe(
            "/readyz", probe_port, scheme, periodSeconds=5, timeoutSeconds=3, failureThreshold=3
        ),
        "volumeMounts": mounts,
        "securityContext": meta.container_security_context(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def _pod_metadata(
    store: MemoryStore, config: Manifest | None, certificates: tls_.Certificates
) -> dict[str, Any]:
    annotations = {}
    if config is not None:
        # A config change must roll the pods: they read the file once, at start.
        annotations[labels.CONFIG_CHECKSUM] = meta.checksum(config["data"])
    # So must a new certificate: the server loads it at start.
    annotations |= tls_.pod_annotations(certificates, server=True)
    return meta.pod_metadata(pod_labels(store), store.spec.server.pod, annotations)


def _volumes(store: MemoryStore, config: Manifest | None, clients: bool) -> list[dict[str, Any]]:
    volumes = [meta.empty_dir("scratch", "2Gi"), meta.empty_dir("tmp", "1Gi")]
    if config is not None:
        volumes.append({"name": CONFIG_VOLUME, "configMap": {"name": config["metadata"]["name"]}})
    if clients:
        volumes.append(clients_.volume(store))
    return volumes + tls_.server_volumes(store)[0]


def deployment(
    store: MemoryStore,
    held: bool = False,
    images: meta.Images = meta.NO_IMAGES,
    clients: bool = False,
    certificates: tls_.Certificates = tls_.NONE,
) -> Manifest:
    """The server's Deployment; `held` runs no replica (the store is being restored); `clients` mounts
    the store's clients Secret (its changes reach the pods without rolling them); `certificates` roll
    the pods when they change."""
    config = config_map(store)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta.metadata(
            store, names.server_deployment_name(store), meta.SERVER, meta.SERVER_COMPONENT
        ),
        "spec": {
            "replicas": 0 if held else store.spec.server.replicas,
            "selector": {"matchLabels": selector(store)},
            # Stateless: start the new pod before stopping an old one.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": _pod_metadata(store, config, certificates),
                "spec": meta.placed(
                    {
                        "automountServiceAccountToken": False,
                        "enableServiceLinks": False,
                        "securityContext": meta.pod_security_context(meta.OPERATOR_UID),
                        "containers": [_container(store, images, clients)],
                        "volumes": _volumes(store, config, clients),
                    },
                    store.spec.server.pod,
                    selector(store),
                    meta.pull_secrets(store, images),
                ),
            },
        },
    }


def service(store: MemoryStore) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta.metadata(
            store, names.server_service_name(store), meta.SERVER, meta.SERVER_COMPONENT
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(store),
            "ports": [meta.service_port("http", env.SERVER_PORT)],
        },
    }


def render(
    store: MemoryStore,
    held: bool = False,
    images: meta.Images = meta.NO_IMAGES,
    clients: bool = False,
    certificates: tls_.Certificates = tls_.NONE,
) -> list[Manifest]:
    config = config_map(store)
    return [
        *([config] if config is not None else []),
        service(store),
        deployment(store, held, images, clients, certificates),
    ]
