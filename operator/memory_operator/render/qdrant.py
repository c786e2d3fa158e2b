"""Qdrant: a StatefulSet (single node, or a cluster when replicas > 1), its Services.

Configuration goes through `QDRANT__` environment variables, so no config file is mounted. A small shell
wrapper around the image's entrypoint raises the open-files limit to the hard limit, as Qdrant's own
Helm chart does (a collection keeps many segment files open); in cluster mode it also gives every node
its own `--uri` (and all but node 0 a `--bootstrap`), computed from the pod's ordinal.

Snapshots (`/qdrant/snapshots`) get a volume of their own, sized from the store: `vectorStore.snapshots`
(an `emptyDir` limited to `size`, or a claim per pod), `size` defaulting to the storage volume's, as the
chart advises. A backup holds one snapshot there at a time and a restore one upload.
"""

from __future__ import annotations

from typing import Any

from memory_operator import env
from memory_operator.api.store import MemoryStore, ServerFlavor
from memory_operator.images import DEFAULT_QDRANT_IMAGE
from memory_operator.render import meta, names
from memory_operator.render import tls as tls_
from memory_operator.render.credentials import QDRANT_KEY
from memory_operator.render.meta import Manifest

STORAGE_PATH = "/qdrant/storage"
SNAPSHOTS_PATH = "/qdrant/snapshots"
# Qdrant writes a marker file once started; the root file system is read-only, so it goes here.
INIT_DIR = "/qdrant/init"
ENTRYPOINT = "/qdrant/entrypoint.sh"
STORAGE_VOLUME = "storage"

SNAPSHOTS_VOLUME = "snapshots"

# The soft open-files limit up to the hard one, as the official chart's `initialize.sh`; where the
# runtime refuses, Qdrant starts with the limit it has.
RAISE_OPEN_FILES = 'ulimit -n "$(ulimit -Hn)" || echo "open-files limit left at $(ulimit -n)" >&2\n'

SINGLE_NODE_SCRIPT = RAISE_OPEN_FILES + f"exec {ENTRYPOINT}\n"

# Node 0 founds the cluster; the others join it. Ordinal from the hostname `<statefulset>-<ordinal>`.
PEER_SCRIPT = (
    RAISE_OPEN_FILES
    + """\
set -e
ordinal="${HOSTNAME##*-}"
self="http://${QDRANT_STATEFULSET}-${ordinal}.${QDRANT_PEER_DOMAIN}:${QDRANT_P2P_PORT}"
founder="http://${QDRANT_STATEFULSET}-0.${QDRANT_PEER_DOMAIN}:${QDRANT_P2P_PORT}"
if [ "$ordinal" = "0" ]; then
  exec {entrypoint} --uri "$self"
fi
exec {entrypoint} --bootstrap "$founder" --uri "$self"
""".replace("{entrypoint}", ENTRYPOINT)
)
# With TLS, the peers talk to each other over https (the store's certificate names every node).
TLS_PEER_SCRIPT = PEER_SCRIPT.replace('="http://', '="https://')


def is_distributed(store: MemoryStore) -> bool:
    return store.spec.vector_store.replicas > 1


def uses_api_key(store: MemoryStore) -> bool:
    """Whether Qdrant demands its API key.

    The upstream OpenMemory server has no setting for a Qdrant API key (only `QDRANT_HOST` and
    `QDRANT_PORT`), so with that flavor Qdrant runs without one and the NetworkPolicy alone keeps
    other pods out.
    """
    return store.spec.server.flavor != ServerFlavor.openmemory


def pod_labels(store: MemoryStore) -> dict[str, str]:
    return meta.labels(store, meta.QDRANT, meta.VECTOR_STORE)


def selector(store: MemoryStore) -> dict[str, str]:
    return meta.selector_labels(store, meta.QDRANT, meta.VECTOR_STORE)


def _env(store: MemoryStore) -> list[dict[str, Any]]:
    variables = [
        meta.env_value("QDRANT__STORAGE__STORAGE_PATH", STORAGE_PATH),
        meta.env_value("QDRANT__STORAGE__SNAPSHOTS_PATH", SNAPSHOTS_PATH),
        meta.env_value("QDRANT__SERVICE__HTTP_PORT", env.QDRANT_HTTP_PORT),
        meta.env_value("QDRANT__SERVICE__GRPC_PORT", env.QDRANT_GRPC_PORT),
        meta.env_value("QDRANT__TELEMETRY_DISABLED", "true"),
        meta.env_value("QDRANT_INIT_FILE_PATH", f"{INIT_DIR}/.qdrant-initialized"),
    ]
    if uses_api_key(store):
        variables.append(
            meta.env_secret("QDRANT__SERVICE__API_KEY", names.qdrant_secret_name(store), QDRANT_KEY)
        )
    if is_distributed(store):
        headless = names.qdrant_headless_service_name(store)
        variables += [
            meta.env_value("QDRANT__CLUSTER__ENABLED", "true"),
            meta.env_value("QDRANT__CLUSTER__P2P__PORT", env.QDRANT_P2P_PORT),
            meta.env_value("QDRANT_STATEFULSET", names.qdrant_statefulset_name(store)),
            meta.env_value("QDRANT_PEER_DOMAIN", f"{headless}.{store.metadata.namespace}.svc"),
            meta.env_value("QDRANT_P2P_PORT", env.QDRANT_P2P_PORT),
        ]
    return variables + tls_.qdrant_env(store, is_distributed(store))


def image(store: MemoryStore, images: meta.Images = meta.NO_IMAGES) -> str:
    """The Qdrant image every node runs once rolled."""
    return images.default_or_given(store.spec.vector_store.image, DEFAULT_QDRANT_IMAGE)


def _container(store: MemoryStore, images: meta.Images) -> dict[str, Any]:
    vector = store.spec.vector_store
    ports = [
        meta.container_port("http", env.QDRANT_HTTP_PORT),
        meta.container_port("grpc", env.QDRANT_GRPC_PORT),
    ]
    container: dict[str, Any] = {
        "name": "qdrant",
        "image": image(store, images),
        "imagePullPolicy": "IfNotPresent",
    }
    if is_distributed(store):
        ports.append(meta.container_port("p2p", env.QDRANT_P2P_PORT))
        script = TLS_PEER_SCRIPT if tls_.enabled(store) else PEER_SCRIPT
        container["command"] = ["/bin/sh", "-c", script]
    else:
        container["command"] = ["/bin/sh", "-c", SINGLE_NODE_SCRIPT]
    scheme = tls_.probe_scheme(store)
    container.update(
        {
            "ports": ports,
            "env": _env(store),
            "resources": meta.resources(vector.resources),
            # Loading large collections can take minutes: the startup probe gives it 10.
            "startupProbe": meta.http_probe(
                "/livez", "http", scheme, periodSeconds=5, timeoutSeconds=3, failureThreshold=120
            ),
            "livenessProbe": meta.http_probe(
                "/livez", "http", scheme, periodSeconds=10, timeoutSeconds=5, failureThreshold=6
            ),
            # In cluster mode /readyz answers 503 until the node caught up with consensus, so a rolling
            # update waits for each node before restarting the next.
            "readinessProbe": meta.http_probe(
                "/readyz", "http", scheme, periodSeconds=5, timeoutSeconds=3, failureThreshold=3
            ),
            "volumeMounts": [
                {"name": STORAGE_VOLUME, "mountPath": STORAGE_PATH},
                {"name": SNAPSHOTS_VOLUME, "mountPath": SNAPSHOTS_PATH},
                {"name": "init", "mountPath": INIT_DIR},
                {"name": "tmp", "mountPath": "/tmp"},
                *tls_.qdrant_volumes(store)[1],
            ],
            "securityContext": meta.container_security_context(),
            "terminationMessagePolicy": "FallbackToLogsOnError",
        }
    )
    return container


def _affinity(store: MemoryStore) -> dict[str, Any]:
    """Spread nodes over hosts when possible, so one host failing takes one replica."""
    return {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "labelSelector": {"matchLabels": selector(store)},
                        "topologyKey": "kubernetes.io/hostname",
                    },
                }
            ]
        }
    }


def _volume_claim_template(store: MemoryStore) -> dict[str, Any]:
    storage = store.spec.vector_store.storage
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": storage.size}},
    }
    if storage.storage_class_name:
        spec["storageClassName"] = storage.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": STORAGE_VOLUME, "labels": meta.labels(store, meta.QDRANT, meta.VECTOR_STORE)},
        "spec": spec,
    }


def snapshots_size(store: MemoryStore) -> str:
    """Room for snapshots on each node: the spec's, else the storage volume's size."""
    vector = store.spec.vector_store
    return vector.snapshots.size or vector.storage.size


def snapshots_volume(store: MemoryStore) -> dict[str, Any]:
    """An `emptyDir` limited to the size, or with `snapshots.claim` a claim per pod, gone with the pod."""
    snapshots = store.spec.vector_store.snapshots
    if not snapshots.claim:
        return meta.empty_dir(SNAPSHOTS_VOLUME, snapshots_size(store))
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": snapshots_size(store)}},
    }
    if snapshots.storage_class_name:
        spec["storageClassName"] = snapshots.storage_class_name
    return {
        "name": SNAPSHOTS_VOLUME,
        "ephemeral": {
            "volumeClaimTemplate": {
                "metadata": {"labels": meta.labels(store, meta.QDRANT, meta.VECTOR_STORE)},
                "spec": spec,
            }
        },
    }


def update_strategy(partition: int | None) -> dict[str, Any]:
    """Rolling; during a Qdrant upgrade the nodes below `partition` keep their version until the
    operator lowers it, one node at a time."""
    if partition is None:
        return {"type": "RollingUpdate"}
    return {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}}


def statefulset(
    store: MemoryStore,
    images: meta.Images = meta.NO_IMAGES,
    partition: int | None = None,
    certificates: tls_.Certificates = tls_.NONE,
) -> Manifest:
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": meta.pod_security_context(meta.QDRANT_UID),
        # Qdrant flushes its write-ahead log on SIGTERM; give it time.
        "terminationGracePeriodSeconds": 60,
        "containers": [_container(store, images)],
        "volumes": [
            snapshots_volume(store),
            meta.empty_dir("init", "1Mi"),
            meta.empty_dir("tmp", "1Gi"),
            *tls_.qdrant_volumes(store)[0],
        ],
    }
    pod = store.spec.vector_store.pod
    pod_spec = meta.placed(
        pod_spec,
        pod,
        selector(store),
        meta.pull_secrets(store, images),
        default_affinity=_affinity(store) if is_distributed(store) else None,
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta.metadata(
            store, names.qdrant_statefulset_name(store), meta.QDRANT, meta.VECTOR_STORE
        ),
        "spec": {
            "replicas": store.spec.vector_store.replicas,
            "serviceName": names.qdrant_headless_service_name(store),
            # OrderedReady would deadlock a cluster: node 0 is not ready until its peers are up.
            "podManagementPolicy": "Parallel",
            "updateStrategy": update_strategy(partition),
            "selector": {"matchLabels": selector(store)},
            # The controller deletes the claims itself, and only under deletionPolicy Delete.
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
            "template": {
                "metadata": meta.pod_metadata(pod_labels(store), pod, tls_.pod_annotations(certificates)),
                "spec": pod_spec,
            },
            "volumeClaimTemplates": [_volume_claim_template(store)],
        },
    }


def service(store: MemoryStore) -> Manifest:
    """The client Service (REST and gRPC), load-balanced over ready nodes."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta.metadata(store, names.qdrant_service_name(store), meta.QDRANT, meta.VECTOR_STORE),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(store),
            "ports": [
                meta.service_port("http", env.QDRANT_HTTP_PORT),
                meta.service_port("grpc", env.QDRANT_GRPC_PORT),
            ],
        },
    }


def headless_service(store: MemoryStore) -> Manifest:
    """Per-node DNS names: peers find each other before they are ready; backups address each node."""
    ports = [
        meta.service_port("http", env.QDRANT_HTTP_PORT),
        meta.service_port("grpc", env.QDRANT_GRPC_PORT),
    ]
    if is_distributed(store):
        ports.append(meta.service_port("p2p", env.QDRANT_P2P_PORT))
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta.metadata(
            store, names.qdrant_headless_service_name(store), meta.QDRANT, meta.VECTOR_STORE
        ),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": selector(store),
            "ports": ports,
        },
    }


def render(
    store: MemoryStore,
    images: meta.Images = meta.NO_IMAGES,
    partition: int | None = None,
    certificates: tls_.Certificates = tls_.NONE,
) -> list[Manifest]:
    """Services first, so the StatefulSet's pods resolve their peers from the start."""
    return [headless_service(store), service(store), statefulset(store, images, partition, certificates)]
