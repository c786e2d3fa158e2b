"""The MemoryStore custom resource: one Qdrant database, one memory server, their secrets and schedules."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from memory_operator.api.common import (
    CRON_PATTERN,
    DURATION_PATTERN,
    ApiModel,
    Condition,
    ObjectMeta,
    ObjectName,
    Quantity,
    ResourceRequirements,
    SecretKeyRef,
    cel,
    immutable,
    immutable_when_set,
    list_map,
    rules,
)
from memory_operator.api.pods import LocalObjectReference, PodSettings, metadata_keys_checked
from memory_operator.images import DEFAULT_QDRANT_IMAGE

KIND = "MemoryStore"
PLURAL = "memorystores"
# Child names are the store's name plus suffixes such as `-qdrant-headless`, and Services want a
# DNS-1035 label: a letter first, 63 characters at most in all.
MAX_NAME_LENGTH = 45


def _resources(cpu: str, memory: str, memory_limit: str) -> ResourceRequirements:
    return ResourceRequirements(requests={"cpu": cpu, "memory": memory}, limits={"memory": memory_limit})


class StorageSpec(ApiModel):
    """The persistent volume of each Qdrant node."""

    model_config = ConfigDict(json_schema_extra=immutable_when_set("storageClassName"))

    size: Quantity = "10Gi"
    """Requested size of each node's volume. It can grow but never shrink."""
    storage_class_name: str | None = Field(default=None, max_length=253)
    """StorageClass of the volumes; the cluster default when unset. Immutable."""


class SnapshotStorageSpec(ApiModel):
    """Each Qdrant node's room for collection snapshots: one taken for a backup (copied out, then
    deleted) or one uploaded by a restore (deleted once recovered)."""

    size: Quantity | None = None
    """Room for the largest snapshot of a node's share of the collection; the size of `storage` when
    unset (a snapshot is about as large as the data it holds)."""
    claim: bool = False
    """Put the room on a volume claimed for each pod (a generic ephemeral volume, deleted with the pod)
    instead of an `emptyDir` on the node's disk, limited to `size` (going beyond it evicts the pod)."""
    storage_class_name: str | None = Field(default=None, max_length=253)
    """StorageClass of that claim; the cluster default when unset."""


class CollectionSpec(ApiModel):
    """The Qdrant collection that holds the memories."""

    # Qdrant cannot rename a collection or change its shard count in place; the replication factor and
    # on-disk storage it can change, and the operator applies them to the live collection.
    model_config = ConfigDict(json_schema_extra=rules(immutable("name"), immutable("shardNumber")))

    name: str = Field(default="memories", pattern=r"^[a-zA-Z0-9_-]{1,255}$")
    """Collection name. Immutable: renaming would orphan every memory. The `openmemory` flavor ignores it
    and always uses `openmemory`, the name upstream hard-codes."""
    on_disk: bool = False
    """Keep vectors on disk (memory-mapped) instead of in RAM."""
    replication_factor: int = Field(default=1, ge=1, le=16)
    """Copies of each shard across nodes; 2 or more keeps data available while a node restarts."""
    shard_number: int = Field(default=1, ge=1, le=256)
    """Number of shards the collection is split into. Immutable: Qdrant cannot reshard a collection."""


class VectorStoreSpec(ApiModel):
    """The Qdrant vector database."""

    image: str = Field(default=DEFAULT_QDRANT_IMAGE, min_length=1, max_length=512)
    """Qdrant container image, pinned to a version."""
    replicas: int = Field(default=1, ge=1, le=64)
    """Qdrant nodes; more than one runs Qdrant in distributed (cluster) mode."""
    storage: StorageSpec = Field(default_factory=StorageSpec)
    """Persistent volume of each node."""
    resources: ResourceRequirements = Field(default_factory=lambda: _resources("250m", "512Mi", "2Gi"))
    """Compute resources of each node."""
    collection: CollectionSpec = Field(default_factory=CollectionSpec)
    """The collection that holds the memories."""
    snapshots: SnapshotStorageSpec = Field(default_factory=SnapshotStorageSpec)
    """Room for the snapshots of backups and restores on each node."""
    pod: PodSettings | None = None
    """Scheduling (node selector, tolerations, affinity, spread, priority), labels and annotations of
    the Qdrant pods."""


class ServerFlavor(StrEnum):
    builtin = "builtin"
    openmemory = "openmemory"


class ModelProviderSpec(ApiModel):
    """A language or embedding model provider, as mem0 configures it."""

    provider: str = Field(min_length=1, max_length=63)
    """mem0 provider name, e.g. `openai`, `ollama`, `huggingface`."""
    model: str = Field(min_length=1, max_length=253)
    """Model name at that provider."""
    api_key_secret_ref: SecretKeyRef | None = None
    """Secret key holding the provider's API key; keys are never written in the spec."""
    base_url: str | None = Field(default=None, max_length=2048)
    """Endpoint of a self-hosted or proxied provider."""


class EmbedderSpec(ModelProviderSpec):
    """The embedding model; its dimension sizes the collection's vectors."""

    dims: int = Field(ge=1, le=65536)
    """Dimension of the vectors the model produces. Immutable: vectors of another size do not fit."""

    model_config = ConfigDict(json_schema_extra=immutable("dims"))


# Same grammar as the server's config file (`memory_operator.server.config`): whole days or weeks, or
# `never` (mem0 stores the expiration as a date).
EXPIRATION_PATTERN = r"^([1-9][0-9]*[dw]|never)$"
Expiration = Annotated[str, Field(pattern=EXPIRATION_PATTERN, max_length=16)]


class CategorySpec(ApiModel):
    """A custom category of memories."""

    name: str = Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    """Category name, e.g. `incident`; the language model files memories under it."""
    description: str | None = Field(default=None, max_length=1024)
    """What belongs in the category, given to the language model when it categorises memories."""
    expiration: Expiration | None = None
    """Default lifetime of a new memory in this category: days or weeks (`90d`, `2w`) or `never`."""


class ServerConfigSpec(ApiModel):
    """Custom categories, instructions and default expirations of the builtin server.

    Rendered as the server's YAML config file (ConfigMap `<store>-server-config`); a change rolls the
    server pods. The `openmemory` flavor ignores it.
    """

    categories: list[CategorySpec] = Field(default_factory=list, max_length=256)
    """Custom categories, each with an optional description and default expiration."""
    custom_instructions: str | None = Field(default=None, max_length=16384)
    """Instructions for the language model on which facts to keep and how to phrase them."""
    default_expiration: dict[str, Expiration] = Field(default_factory=dict, max_length=256)
    """Default expiration by category name (`90d`, `2w` or `never`), added to or overriding the built-in
    table (`incident: 90d`, `temporary: 7d`, `permanent: never`); a category's own `expiration` wins."""

    @model_validator(mode="after")
    def _unique_categories(self) -> ServerConfigSpec:
        names = [c.name for c in self.categories]
        if len(names) != len(set(names)):
            raise ValueError("category names must be unique")
        return self


# A browser origin as CORS compares it: scheme, host and optional port, no path; or `*` (any).
ORIGIN_PATTERN = r"^(\*|https?://[^/\s?#]+)$"


class CorsSpec(ApiModel):
    """Cross-origin requests from browsers (keys travel in headers, never in cookies)."""

    allowed_origins: list[Annotated[str, Field(pattern=ORIGIN_PATTERN, max_length=2048)]] = Field(
        min_length=1, max_length=64
    )
    """Origins whose pages may call the API, e.g. `http://localhost:3000` (OpenMemory's UI); `*` allows
    any page, which then still needs an API key."""


class ServerSpec(ApiModel):
    """The memory API server agents talk to."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            "self.flavor != 'openmemory' || self.replicas <= 1",
            "the openmemory flavor keeps state in SQLite and runs at most 1 replica",
            ".replicas",
        )
    )

    flavor: ServerFlavor = ServerFlavor.builtin
    """`builtin` runs the operator's own OpenMemory-compatible server (authenticated, stateless, scalable);
    `openmemory` runs the upstream OpenMemory image (single replica, no authentication of its own)."""
    replicas: int = Field(default=1, ge=0, le=64)
    """Server pods. The `openmemory` flavor keeps state in a local SQLite file and allows only one."""
    image: str | None = Field(default=None, max_length=512)
    """Container image; the pinned default of the flavor when unset."""
    llm: ModelProviderSpec | None = None
    """Language model that extracts facts and files each new memory under the configured categories (their
    default expirations follow); without one, memories are stored verbatim, under the categories callers
    name only."""
    embedder: EmbedderSpec | None = None
    """Embedding model; the local all-MiniLM-L6-v2 (384 dimensions) when unset."""
    resources: ResourceRequirements = Field(default_factory=lambda: _resources("100m", "512Mi", "2Gi"))
    """Compute resources of each server pod."""
    user: str = Field(default="default", min_length=1, max_length=253)
    """Default user id of the `openmemory` flavor (its `USER` variable)."""
    config: ServerConfigSpec | None = None
    """Custom categories, instructions and default expirations of the `builtin` flavor (its config file);
    the `openmemory` flavor ignores it."""
    cors: CorsSpec | None = None
    """Browser origins allowed to call the `builtin` server (e.g. OpenMemory's UI); CORS is off when
    unset. The `openmemory` flavor ignores it."""
    pod: PodSettings | None = None
    """Scheduling (node selector, tolerations, affinity, spread, priority), labels and annotations of
    the server pods."""

    @model_validator(mode="after")
    def _openmemory_is_single_replica(self) -> ServerSpec:
        if self.flavor == ServerFlavor.openmemory and self.replicas > 1:
            raise ValueError("the openmemory flavor keeps state in SQLite and runs at most 1 replica")
        return self


class AuthSpec(ApiModel):
    """API keys that clients present to the memory server and the server presents to Qdrant."""

    existing_secret: ObjectName | None = None
    """Adopt this Secret instead of generating one; it must hold `apiKeyKey`."""
    api_key_key: str = Field(default="api-key", min_length=1, max_length=253)
    """Key of the read-write API key in the Secret."""
    read_only_api_key_key: str = Field(default="read-only-api-key", min_length=1, max_length=253)
    """Key of the read-only API key in the Secret (optional in an existing Secret)."""


class PvcDestination(ApiModel):
    """Backups kept on a PersistentVolumeClaim."""

    claim_name: ObjectName | None = None
    """An existing claim to write to; the operator creates `<store>-backups` when unset."""
    size: Quantity = "20Gi"
    """Size of the claim the operator creates."""
    storage_class_name: str | None = Field(default=None, max_length=253)
    """StorageClass of the claim the operator creates."""


class S3Destination(ApiModel):
    """Backups kept in an S3-compatible bucket."""

    bucket: str = Field(min_length=3, max_length=63)
    """Bucket name."""
    prefix: str = Field(default="", max_length=512)
    """Key prefix under which this store's backups go."""
    endpoint: str | None = Field(default=None, max_length=2048)
    """Endpoint URL of an S3-compatible service; AWS when unset."""
    region: str | None = Field(default=None, max_length=63)
    """Region of the bucket."""
    credentials_secret: ObjectName | None = None
    """Secret with `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`. Unset, the jobs take the AWS SDK's
    own credentials: those of their ServiceAccount (IRSA, EKS Pod Identity, GKE Workload Identity
    through `jobs.serviceAccount.annotations`) or of the node."""


class BackupDestination(ApiModel):
    """Where backups go: exactly one of `pvc` and `s3`."""

    model_config = ConfigDict(
        json_schema_extra=cel("has(self.pvc) != has(self.s3)", "exactly one of pvc and s3 must be set")
    )

    pvc: PvcDestination | None = None
    """Keep backups on a volume."""
    s3: S3Destination | None = None
    """Keep backups in an S3 bucket."""

    @model_validator(mode="after")
    def _exactly_one(self) -> BackupDestination:
        if (self.pvc is None) == (self.s3 is None):
            raise ValueError("exactly one of pvc and s3 must be set")
        return self


class BackupRetention(ApiModel):
    """Which backups are pruned; a backup is kept while it satisfies both limits."""

    max_count: int = Field(default=7, ge=1, le=1000)
    """Completed backups kept at most."""
    max_age: Annotated[str, Field(pattern=DURATION_PATTERN)] | None = "30d"
    """Backups older than this are pruned, e.g. `30d`."""


class BackupSpec(ApiModel):
    """Scheduled snapshots of every collection."""

    schedule: str = Field(default="0 2 * * *", pattern=CRON_PATTERN)
    """Cron schedule of backups (in UTC)."""
    destination: BackupDestination = Field(default_factory=lambda: BackupDestination(pvc=PvcDestination()))
    """Where backups go."""
    retention: BackupRetention = Field(default_factory=BackupRetention)
    """Which backups are pruned."""
    suspend: bool = False
    """Stop scheduling backups, keeping the existing ones."""


class FromBackup(ApiModel):
    """A completed MemoryBackup to restore from."""

    name: ObjectName
    """Name of the MemoryBackup, in the store's namespace."""


class BootstrapSpec(ApiModel):
    """How a new store's data begins. Immutable."""

    model_config = ConfigDict(json_schema_extra=cel("self == oldSelf", "bootstrap is immutable"))

    from_backup: FromBackup | None = None
    """Restore the collections of a completed backup before the server starts."""


def _default_job_resources() -> ResourceRequirements:
    # Limits on both, so that namespaces whose ResourceQuota demands them admit the jobs.
    return ResourceRequirements(
        requests={"cpu": "50m", "memory": "128Mi"}, limits={"cpu": "1", "memory": "512Mi"}
    )


class JobServiceAccountSpec(ApiModel):
    """The ServiceAccount the store's jobs run as, `<store>-jobs`, which the operator creates."""

    annotations: dict[str, str] = Field(default_factory=dict)
    """Annotations of the ServiceAccount, e.g. `eks.amazonaws.com/role-arn` (IRSA) or
    `iam.gke.io/gcp-service-account` (Workload Identity), so that S3 backups need no static keys."""

    @field_validator("annotations")
    @classmethod
    def _keys_are_annotation_keys(cls, value: dict[str, str]) -> dict[str, str]:
        return metadata_keys_checked(value)


class JobsSpec(ApiModel):
    """The store's expiration, backup, restore and collection jobs."""

    resources: ResourceRequirements = Field(default_factory=_default_job_resources)
    """Compute resources of each job's container."""
    pod: PodSettings | None = None
    """Scheduling (node selector, tolerations, affinity, spread, priority), labels and annotations of
    the job pods."""
    service_account: JobServiceAccountSpec = Field(default_factory=JobServiceAccountSpec)
    """The jobs' ServiceAccount."""


class CanarySpec(ApiModel):
    """A recall canary: on a schedule, a Job writes a scripted scenario of facts into a reserved scope
    through the store's own API, asks paraphrased questions as an agent would, measures recall@k and
    the searches' latency, and deletes what it wrote. The result is `status.lastCanary`."""

    schedule: str = Field(default="*/30 * * * *", pattern=CRON_PATTERN)
    """Cron schedule of the canary's runs (in UTC)."""
    top_k: int = Field(default=5, ge=1, le=50)
    """Results asked for per question: the canary measures recall@k with this k."""
    min_recall: float = Field(default=0.95, ge=0.0, le=1.0)
    """The run fails (and the alert fires) when recall@k is below this."""
    max_latency_p95_milliseconds: int = Field(default=2000, ge=1, le=600_000)
    """The run fails (and the alert fires) when the 95th percentile of the searches' latency is above
    this."""
    suspend: bool = False
    """Stop scheduling runs, keeping the last result."""


class MonitoringSpec(ApiModel):
    """Checks of the store's health beyond its pods'."""

    canary: CanarySpec | None = None
    """A recall canary run on a schedule (the `builtin` server only); none when unset."""


class TlsMode(StrEnum):
    disabled = "disabled"
    enabled = "enabled"


class IssuerRef(ApiModel):
    """A cert-manager issuer, as a cert-manager `Certificate` names it."""

    name: ObjectName
    """Name of the Issuer (in the store's namespace) or ClusterIssuer."""
    kind: Literal["Issuer", "ClusterIssuer"] = "Issuer"
    """`Issuer` or `ClusterIssuer`."""
    group: str = Field(default="cert-manager.io", min_length=1, max_length=253)
    """API group of the issuer; `cert-manager.io` unless an external issuer's."""


class TlsSpec(ApiModel):
    """TLS on every hop of the store: clients to the memory server, the server and the jobs to Qdrant,
    Qdrant's nodes to each other. The certificate comes from the Secret named in `secretName`, from
    cert-manager when `issuerRef` is set, or else from a CA the operator generates and rotates itself."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            "!has(self.secretName) || !has(self.issuerRef)", "set at most one of secretName and issuerRef"
        )
    )

    mode: TlsMode = TlsMode.disabled
    """`disabled`: plain HTTP inside the cluster (guarded by API keys and NetworkPolicies); `enabled`: the
    server serves HTTPS, Qdrant serves its API (and, with several nodes, talks to its peers) over TLS,
    and every client verifies the certificate against the store's CA bundle."""
    secret_name: ObjectName | None = None
    """A `kubernetes.io/tls` Secret with `tls.crt` and `tls.key` (and `ca.crt`, required with several
    Qdrant nodes) for the store's DNS names (docs/tls.md lists them); the operator generates none."""
    issuer_ref: IssuerRef | None = None
    """A cert-manager issuer: the operator creates a `Certificate` for the store's DNS names and serves
    what cert-manager issues (cert-manager must be installed)."""
    client_ca_secret: ObjectName | None = None
    """Mutual TLS: a Secret whose `ca.crt` signs the certificates clients of the memory server must
    present; the server then refuses connections without one (its probes go to a port of their own)."""

    @model_validator(mode="after")
    def _one_source(self) -> TlsSpec:
        if self.secret_name and self.issuer_ref:
            raise ValueError("set at most one of secretName and issuerRef")
        return self

    @property
    def enabled(self) -> bool:
        return self.mode == TlsMode.enabled


class DeletionPolicy(StrEnum):
    Retain = "Retain"
    Delete = "Delete"


# The canary speaks the builtin server's API (mem0's add, search and delete by scope).
CANARY_FLAVOR_MESSAGE = "monitoring.canary needs the builtin server flavor"
# The upstream OpenMemory server has no TLS settings, for itself or for Qdrant.
TLS_FLAVOR_MESSAGE = "tls.mode enabled needs the builtin server flavor"


class MemoryStoreSpec(ApiModel):
    """Desired state of a MemoryStore."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            cel("has(self.bootstrap) == has(oldSelf.bootstrap)", "bootstrap is immutable"),
            cel(
                "!has(self.monitoring) || !has(self.monitoring.canary) || !has(self.server) "
                "|| !has(self.server.flavor) || self.server.flavor == 'builtin'",
                CANARY_FLAVOR_MESSAGE,
            ),
            cel(
                "!has(self.tls) || !has(self.tls.mode) || self.tls.mode == 'disabled' || !has(self.server) "
                "|| !has(self.server.flavor) || self.server.flavor == 'builtin'",
                TLS_FLAVOR_MESSAGE,
            ),
        )
    )

    vector_store: VectorStoreSpec = Field(default_factory=VectorStoreSpec)
    """The Qdrant vector database."""
    server: ServerSpec = Field(default_factory=ServerSpec)
    """The memory API server."""
    auth: AuthSpec = Field(default_factory=AuthSpec)
    """API keys of the server and of Qdrant."""
    backup: BackupSpec | None = None
    """Scheduled backups; none when unset."""
    bootstrap: BootstrapSpec | None = None
    """Restore a new store from a backup. Immutable: it can be neither added nor removed later."""
    deletion_policy: DeletionPolicy = DeletionPolicy.Retain
    """On deletion, `Retain` keeps volumes and backups for a later store of the same name; `Delete` deletes
    the Qdrant volumes, the backup claim the operator made and the MemoryBackup objects (not the files in
    an S3 bucket or on a claim named in `pvc.claimName`)."""
    paused: bool = False
    """Stop reconciling: children are left exactly as they are."""
    jobs: JobsSpec = Field(default_factory=JobsSpec)
    """Resources, placement and identity of the store's jobs."""
    image_pull_secrets: list[LocalObjectReference] = Field(default_factory=list, max_length=16)
    """Secrets of the store's namespace to pull every image of the store with (Qdrant, the server, the
    jobs), after those the operator adds to every store."""
    monitoring: MonitoringSpec | None = None
    """Checks beyond the pods' health: the recall canary."""
    tls: TlsSpec | None = None
    """TLS on every hop (the `builtin` server only); plain HTTP inside the cluster when unset."""

    @model_validator(mode="after")
    def _canary_needs_the_builtin_server(self) -> MemoryStoreSpec:
        if self.monitoring and self.monitoring.canary and self.server.flavor != ServerFlavor.builtin:
            raise ValueError(CANARY_FLAVOR_MESSAGE)
        return self

    @model_validator(mode="after")
    def _tls_needs_the_builtin_server(self) -> MemoryStoreSpec:
        if self.tls_enabled and self.server.flavor != ServerFlavor.builtin:
            raise ValueError(TLS_FLAVOR_MESSAGE)
        return self

    @property
    def tls_enabled(self) -> bool:
        return self.tls is not None and self.tls.enabled


Phase = Literal["Pending", "Provisioning", "Ready", "Degraded", "Failed", "Paused"]


class Endpoints(ApiModel):
    """Where clients reach the store, inside the cluster."""

    server: str | None = None
    """Base URL of the memory API (`/api/v1/memories/`)."""
    mcp: str | None = None
    """MCP streamable-HTTP URL template (`/mcp/{client}/http/{user_id}`)."""
    qdrant: str | None = None
    """Qdrant REST URL."""


class LastBackup(ApiModel):
    """The newest MemoryBackup of the store."""

    name: str
    """Name of the MemoryBackup."""
    phase: str
    """Its phase."""
    completion_time: str | None = None
    """When it finished (RFC 3339)."""


class LastExpiration(ApiModel):
    """The newest expiration run of a policy on the store."""

    policy: str
    """Name of the MemoryPolicy."""
    time: str
    """When the run finished (RFC 3339)."""
    deleted: int = 0
    """Memories deleted (or, in a dry run, that would be)."""
    succeeded: bool = True
    """Whether the run succeeded."""


class LastCanary(ApiModel):
    """The newest run of the recall canary (`spec.monitoring.canary`)."""

    time: str
    """When the run finished (RFC 3339)."""
    passed: bool
    """Whether recall@k was at least `minRecall` and the searches' p95 latency at most its bound."""
    recall: float | None = None
    """Share of the scenario's expected facts found in the top k results of their questions."""
    top_k: int | None = None
    """The k of recall@k."""
    latency_p50_milliseconds: float | None = None
    """Median latency of the canary's searches, as the client saw it."""
    latency_p95_milliseconds: float | None = None
    """95th percentile of the searches' latency."""
    scenario: str | None = None
    """Version of the scenario run, e.g. `v1`."""
    questions: int | None = None
    """Questions asked."""
    job: str | None = None
    """The Job that ran it."""
    error: str | None = None
    """Why the run failed, when it could not measure (the memory server unreachable, a refused write)."""


class MemoryStoreStatus(ApiModel):
    """Observed state of a MemoryStore."""

    phase: Phase = "Pending"
    """Summary of the store's state."""
    conditions: list[Condition] = Field(default_factory=list, json_schema_extra=list_map("type"))
    """`Ready` and one condition per component."""
    observed_generation: int | None = None
    """The `metadata.generation` last reconciled."""
    ready_replicas: str | None = None
    """Ready Qdrant nodes over desired, e.g. `3/3`."""
    endpoints: Endpoints | None = None
    """In-cluster URLs of the store."""
    credentials_secret: str | None = None
    """Name of the Secret with the API keys (never the keys themselves)."""
    last_backup: LastBackup | None = None
    """The newest backup."""
    last_expiration: LastExpiration | None = None
    """The newest expiration run."""
    memory_count: int | None = None
    """Memories (points) in the collection at the last count; counted while Qdrant is ready."""
    restored_from: str | None = None
    """The MemoryBackup the store's data was restored from (`spec.bootstrap.fromBackup`); once set, the
    restore never runs again."""
    last_canary: LastCanary | None = None
    """The newest run of the recall canary."""


class MemoryStore(ApiModel):
    """A long-term memory service for AI agents: Qdrant, a memory server, retention and backups."""

    model_config = ConfigDict(extra="ignore")

    api_version: str = "memory-operator.io/v1alpha1"
    kind: str = KIND
    metadata: ObjectMeta
    spec: MemoryStoreSpec = Field(default_factory=MemoryStoreSpec)
    status: MemoryStoreStatus | None = None

    @model_validator(mode="after")
    def _name_fits_child_names(self) -> MemoryStore:
        name = self.metadata.name
        if not name[:1].isalpha() or len(name) > MAX_NAME_LENGTH:
            raise ValueError(
                f"a MemoryStore name starts with a letter and has at most {MAX_NAME_LENGTH} characters"
            )
        return self
