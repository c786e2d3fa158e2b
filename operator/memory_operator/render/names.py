"""Deterministic names of a store's children, and the in-cluster URLs they make.

Every name derives from the store's name alone, so the controller finds children again after a
restart. Names that would exceed their limit are cut and suffixed with a short stable hash, so two
long store names that share a prefix still get different children.
"""

from __future__ import annotations

import hashlib

from memory_operator import env, images
from memory_operator.api.store import MemoryStore, ServerFlavor

# Most object names (and Service names, which become DNS labels).
MAX_NAME = 63
# CronJobs add 11 characters for their Jobs; StatefulSets add a revision hash to a 63-character label.
MAX_CRONJOB_NAME = 52
MAX_STATEFULSET_NAME = 52
HASH_LENGTH = 8


def fit(name: str, limit: int = MAX_NAME) -> str:
    """`name` when it fits in `limit` characters, else a prefix of it and a hash of the whole."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:HASH_LENGTH]
    return f"{name[: limit - HASH_LENGTH - 1].rstrip('-')}-{digest}"


def _child(store: MemoryStore, suffix: str, limit: int = MAX_NAME) -> str:
    return fit(f"{store.metadata.name}-{suffix}", limit)


def credentials_secret_name(store: MemoryStore) -> str:
    """The Secret of the client API keys the operator generates (unused with `auth.existingSecret`)."""
    return _child(store, "api-keys")


def client_keys_secret_name(store: MemoryStore) -> str:
    """The Secret the server reads the client API keys from: the user's, or the generated one."""
    return store.spec.auth.existing_secret or credentials_secret_name(store)


def qdrant_secret_name(store: MemoryStore) -> str:
    return _child(store, "qdrant-key")


def qdrant_statefulset_name(store: MemoryStore) -> str:
    return _child(store, "qdrant", MAX_STATEFULSET_NAME)


def qdrant_service_name(store: MemoryStore) -> str:
    return _child(store, "qdrant")


def qdrant_headless_service_name(store: MemoryStore) -> str:
    return _child(store, "qdrant-headless")


def qdrant_network_policy_name(store: MemoryStore) -> str:
    return _child(store, "qdrant")


def qdrant_disruption_budget_name(store: MemoryStore) -> str:
    return _child(store, "qdrant")


def server_deployment_name(store: MemoryStore) -> str:
    return _child(store, "server")


def server_service_name(store: MemoryStore) -> str:
    return _child(store, "server")


def server_network_policy_name(store: MemoryStore) -> str:
    return _child(store, "server")


def server_disruption_budget_name(store: MemoryStore) -> str:
    return _child(store, "server")


# OpenMemory hard-codes its collection name and has no setting for it.
OPENMEMORY_COLLECTION = "openmemory"


def memory_collection(store: MemoryStore) -> str:
    """The Qdrant collection the store's server keeps its memories in."""
    if store.spec.server.flavor == ServerFlavor.openmemory:
        return OPENMEMORY_COLLECTION
    return store.spec.vector_store.collection.name


def openmemory_data_claim_name(store: MemoryStore) -> str:
    return _child(store, "openmemory-data")


def expiration_cronjob_name(store: MemoryStore, policy_name: str) -> str:
    return _child(store, f"expire-{policy_name}", MAX_CRONJOB_NAME)


def expiration_configmap_name(store: MemoryStore, policy_name: str) -> str:
    return _child(store, f"policy-{policy_name}")


def canary_cronjob_name(store: MemoryStore) -> str:
    """The CronJob of the recall canary (`spec.monitoring.canary`)."""
    return _child(store, "canary", MAX_CRONJOB_NAME)


def backup_job_name(backup: str) -> str:
    """`<backup>-backup`, shortened with a stable hash to fit a Job name (63 characters)."""
    name = f"{backup}-backup"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(backup.encode()).hexdigest()[:HASH_LENGTH]
    return f"{backup[:45].rstrip('-')}-{digest}-backup"


def image_digest(image: str) -> str:
    """A short digest of an image reference, for names and labels."""
    return hashlib.sha256(image.encode()).hexdigest()[:HASH_LENGTH]


def _with_suffix(store: MemoryStore, suffix: str) -> str:
    return fit(store.metadata.name, MAX_NAME - len(suffix)) + suffix


def upgrade_backup_name(store: MemoryStore, image: str) -> str:
    """`<store>-pre-upgrade-<version>`: the MemoryBackup taken before Qdrant moves to `image` (the tag's
    version, `1-17-0`, or a digest of the image when the tag names none)."""
    version = images.tag_version(image)
    return _with_suffix(
        store, "-pre-upgrade-" + ("-".join(map(str, version)) if version else image_digest(image))
    )


def upgrade_check_job_name(store: MemoryStore, image: str, ordinal: int) -> str:
    """`<store>-upgrade-<digest>-<ordinal>`: the check after node `ordinal` restarted on `image`."""
    return _with_suffix(store, f"-upgrade-{image_digest(image)}-{ordinal}")


def jobs_service_account_name(store: MemoryStore) -> str:
    """The ServiceAccount of the store's jobs."""
    return _child(store, "jobs")


def backup_claim_name(store: MemoryStore) -> str:
    """The claim backups go to: the user's, or `<store>-backups` that the operator creates."""
    backup = store.spec.backup
    if backup is not None and backup.destination.pvc is not None and backup.destination.pvc.claim_name:
        return backup.destination.pvc.claim_name
    return _child(store, "backups")


def server_config_name(store: MemoryStore) -> str:
    """The ConfigMap of the builtin server's config file (`spec.server.config`)."""
    return _child(store, "server-config")


def restore_job_name(store: MemoryStore) -> str:
    return _child(store, "restore")


def erasures_secret_name(store: MemoryStore) -> str:
    """The Secret of the subjects the store's erasure and restore jobs erase (personal data: a Secret)."""
    return _child(store, "erasures")


def erasure_job_name(erasure: str) -> str:
    """`<erasure>-erase`, shortened with a stable hash to fit a Job name (63 characters)."""
    return fit(erasure, MAX_NAME - len("-erase")) + "-erase"


def clients_secret_name(store: MemoryStore) -> str:
    """The Secret of the store's MemoryClients as its server reads them (key hashes, scopes, quotas)."""
    return _child(store, "clients")


# Secret names are DNS subdomains: up to 253 characters.
MAX_SECRET_NAME = 253


def client_secret_name(client: str) -> str:
    """A MemoryClient's own Secret: its key, the REST base URL and the MCP URL template."""
    return fit(f"{client}-memory-credentials", MAX_SECRET_NAME)


def tls_secret_name(store: MemoryStore) -> str:
    """The Secret of the certificate the store serves: the user's (`tls.secretName`), else `<store>-tls`,
    which the operator generates or cert-manager issues."""
    tls = store.spec.tls
    return (tls.secret_name if tls is not None else None) or _child(store, "tls")


def tls_ca_secret_name(store: MemoryStore) -> str:
    """The Secret of the CA the operator generates for the store (its key never leaves it)."""
    return _child(store, "ca")


def jobs_tls_secret_name(store: MemoryStore) -> str:
    """The Secret of the client certificate the store's jobs present to a server demanding one."""
    return _child(store, "jobs-tls")


def certificate_name(store: MemoryStore) -> str:
    """The cert-manager Certificate of the store (`tls.issuerRef`)."""
    return _child(store, "tls")


def _svc_host(name: str, store: MemoryStore) -> str:
    return f"{name}.{store.metadata.namespace}.svc"


def scheme(store: MemoryStore) -> str:
    """`https` when the store runs TLS, else `http`."""
    return "https" if store.spec.tls_enabled else "http"


def tls_dns_names(store: MemoryStore) -> list[str]:
    """The names the store's certificate must hold: its server's and Qdrant's Services, short and long,
    and every Qdrant node behind the headless Service (a wildcard, so that scaling needs no new one)."""
    namespace = store.metadata.namespace
    result = []
    for service in (server_service_name(store), qdrant_service_name(store)):
        result += [service, f"{service}.{namespace}", f"{service}.{namespace}.svc"]
        result.append(f"{service}.{namespace}.svc.cluster.local")
    headless = qdrant_headless_service_name(store)
    result += [f"*.{headless}.{namespace}.svc", f"*.{headless}.{namespace}.svc.cluster.local"]
    return result


def qdrant_host(store: MemoryStore) -> str:
    """DNS name of the Qdrant client Service."""
    return _svc_host(qdrant_service_name(store), store)


def qdrant_url(store: MemoryStore) -> str:
    """Qdrant's REST URL inside the cluster."""
    return f"{scheme(store)}://{qdrant_host(store)}:{env.QDRANT_HTTP_PORT}"


def qdrant_peer_host(store: MemoryStore, ordinal: int) -> str:
    """DNS name of one Qdrant node, through the headless Service."""
    headless = _svc_host(qdrant_headless_service_name(store), store)
    return f"{qdrant_statefulset_name(store)}-{ordinal}.{headless}"


def qdrant_peer_urls(store: MemoryStore) -> list[str]:
    """REST URL of every Qdrant node."""
    return [
        f"{scheme(store)}://{qdrant_peer_host(store, i)}:{env.QDRANT_HTTP_PORT}"
        for i in range(store.spec.vector_store.replicas)
    ]


def server_url(store: MemoryStore) -> str:
    """The memory server's base URL inside the cluster."""
    return f"{scheme(store)}://{_svc_host(server_service_name(store), store)}:{env.SERVER_PORT}"
