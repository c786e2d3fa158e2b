"""Environment variables and paths by which the operator configures the processes it runs.

The renderers write these into pod specs and the `server`, `expire`, `backup`, `restore` and
`collection` roles read them, so both sides name them from here.
"""

import os


def get(name: str, default: str | None = None) -> str | None:
    """The variable's value; unset and empty both give `default` (a manifest may set a variable empty)."""
    return os.environ.get(name) or default


# Where Qdrant is and how to authenticate to it.
QDRANT_URL = "MEMORY_QDRANT_URL"
QDRANT_API_KEY = "MEMORY_QDRANT_API_KEY"
# The collection that holds the memories.
COLLECTION = "MEMORY_COLLECTION"
# The collection job: the spec's settings of the collection, which it creates or brings a live one to
# (the number of Qdrant peers to wait for is that of QDRANT_PEERS).
COLLECTION_VECTOR_SIZE = "MEMORY_COLLECTION_VECTOR_SIZE"
COLLECTION_DISTANCE = "MEMORY_COLLECTION_DISTANCE"
COLLECTION_ON_DISK = "MEMORY_COLLECTION_ON_DISK"
COLLECTION_SHARD_NUMBER = "MEMORY_COLLECTION_SHARD_NUMBER"
COLLECTION_REPLICATION_FACTOR = "MEMORY_COLLECTION_REPLICATION_FACTOR"
# Whether mem0's `<collection>_entities` collection is made as well (`true`/`false`).
COLLECTION_ENTITIES = "MEMORY_COLLECTION_ENTITIES"
# Keys clients present to the memory server (read-write and read-only).
API_KEY = "MEMORY_API_KEY"
READ_ONLY_API_KEY = "MEMORY_READ_ONLY_API_KEY"
# Models (a provider empty or unset means the local all-MiniLM-L6-v2 embedder / no LLM).
EMBEDDER_PROVIDER = "MEMORY_EMBEDDER_PROVIDER"
EMBEDDER_MODEL = "MEMORY_EMBEDDER_MODEL"
EMBEDDER_DIMS = "MEMORY_EMBEDDER_DIMS"
EMBEDDER_API_KEY = "MEMORY_EMBEDDER_API_KEY"
EMBEDDER_BASE_URL = "MEMORY_EMBEDDER_BASE_URL"
LLM_PROVIDER = "MEMORY_LLM_PROVIDER"
LLM_MODEL = "MEMORY_LLM_MODEL"
LLM_API_KEY = "MEMORY_LLM_API_KEY"
LLM_BASE_URL = "MEMORY_LLM_BASE_URL"
# YAML file with custom categories, custom instructions and per-category default expiration.
SERVER_CONFIG_FILE = "MEMORY_SERVER_CONFIG_FILE"
# Browser origins allowed to call the memory server (CORS), comma-separated; unset means none.
CORS_ALLOWED_ORIGINS = "MEMORY_CORS_ALLOWED_ORIGINS"
# The memory server's clients file (MemoryClients: key hashes, scopes, quotas), watched for changes.
CLIENTS_FILE = "MEMORY_CLIENTS_FILE"
# TLS (`spec.tls`). The CA bundle (PEM) that verifies the store's Qdrant and memory server: every
# client of either reads it (the system's trust store when unset, or when the file is absent).
TLS_CA_FILE = "MEMORY_TLS_CA_FILE"
# The memory server's certificate and key (PEM): set, it serves HTTPS.
TLS_CERT_FILE = "MEMORY_TLS_CERT_FILE"
TLS_KEY_FILE = "MEMORY_TLS_KEY_FILE"
# CA bundle of the client certificates the memory server demands (mutual TLS); unset, it asks for none.
TLS_CLIENT_CA_FILE = "MEMORY_TLS_CLIENT_CA_FILE"
# A client certificate and key (PEM) that a job presents to a server demanding one.
TLS_CLIENT_CERT_FILE = "MEMORY_TLS_CLIENT_CERT_FILE"
TLS_CLIENT_KEY_FILE = "MEMORY_TLS_CLIENT_KEY_FILE"
# JSON file with a MemoryPolicy's spec, for the expiration job.
POLICY_FILE = "MEMORY_POLICY_FILE"
# Base URL of the memory server, for jobs that must go through its API (the openmemory flavor).
SERVER_URL = "MEMORY_SERVER_URL"
# The store's flavor (`builtin` or `openmemory`), for jobs whose method depends on it.
SERVER_FLAVOR = "MEMORY_SERVER_FLAVOR"
# Name and namespace of the store a job works for (for its summary and logs).
STORE_NAME = "MEMORY_STORE_NAME"
STORE_NAMESPACE = "MEMORY_STORE_NAMESPACE"

SERVER_PORT = 8765
QDRANT_HTTP_PORT = 6333
QDRANT_GRPC_PORT = 6334
QDRANT_P2P_PORT = 6335
METRICS_PORT = 9090
# Plain-HTTP port of the memory server's probes (/healthz, /readyz) when its API demands client
# certificates, which the kubelet's probes cannot present.
HEALTH_PORT = 8766
HEALTH_PORT_VARIABLE = "MEMORY_HEALTH_PORT"

# Mount points inside the pods the operator renders.
CONFIG_DIR = "/etc/memory-operator"
SERVER_CONFIG_PATH = f"{CONFIG_DIR}/server.yaml"
POLICY_PATH = f"{CONFIG_DIR}/policy.json"
# The store's clients Secret, mounted whole (not by subPath) so that the kubelet updates it in place.
CLIENTS_DIR = "/etc/memory-operator-clients"
CLIENTS_PATH = f"{CLIENTS_DIR}/clients.json"
# The store's certificate in the server's and jobs' pods (`tls.crt`, `tls.key`, `ca.crt`; the jobs get
# `ca.crt` only), the client CA of mutual TLS, and the jobs' client certificate.
TLS_DIR = "/etc/memory-operator-tls"
CLIENT_CA_DIR = "/etc/memory-operator-client-ca"
CLIENT_TLS_DIR = "/etc/memory-operator-client-tls"
# A writable scratch folder (the root file system is read-only): mem0's history DB, model caches.
SCRATCH_DIR = "/tmp/memory-operator"
TERMINATION_LOG = "/dev/termination-log"

# The policy an expiration job enforces (its file holds the spec only).
POLICY_NAME = "MEMORY_POLICY_NAME"
# The claim a PVC destination lives on (mounted at BACKUP_MOUNT_PATH), for the backup's location.
BACKUP_CLAIM_NAME = "MEMORY_BACKUP_CLAIM_NAME"
BACKUP_MOUNT_PATH = "/backups"

# Backups. The Qdrant nodes to snapshot in distributed mode: comma-separated URLs of every peer, addressed
# through the headless Service (the load-balanced Service reaches one peer only); unset means the single
# node at QDRANT_URL.
QDRANT_PEERS = "MEMORY_QDRANT_PEERS"
# Destination: an S3 bucket (credentials from the standard AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) ...
BACKUP_S3_BUCKET = "MEMORY_BACKUP_S3_BUCKET"
BACKUP_S3_PREFIX = "MEMORY_BACKUP_S3_PREFIX"
BACKUP_S3_ENDPOINT = "MEMORY_BACKUP_S3_ENDPOINT"
BACKUP_S3_REGION = "MEMORY_BACKUP_S3_REGION"
# ... or a directory on a mounted volume (BACKUP_CLAIM_NAME names its claim).
BACKUP_DIR = "MEMORY_BACKUP_DIR"
# Retention: completed backups kept at most, and the age (e.g. `30d`) beyond which they are pruned.
BACKUP_MAX_COUNT = "MEMORY_BACKUP_MAX_COUNT"
BACKUP_MAX_AGE = "MEMORY_BACKUP_MAX_AGE"
# Restore: the store the backup was taken from, when it differs from the store being restored, and
# where the backup is (its MemoryBackup's `status.location`), for a store without a destination.
BACKUP_SOURCE_STORE = "MEMORY_BACKUP_SOURCE_STORE"
BACKUP_LOCATION = "MEMORY_BACKUP_LOCATION"
# Erasures: the JSON file of the subjects to erase (`ErasuresFile`), from the store's erasures Secret,
# which the erasure and restore jobs mount.
ERASURES_FILE = "MEMORY_ERASURES_FILE"
ERASURES_DIR = "/etc/memory-operator-erasures"
ERASURES_PATH = f"{ERASURES_DIR}/erasures.json"
