"""Pure renderers: a validated MemoryStore (and the policies that select it) in, child manifests out.

Nothing here talks to a cluster. The same store, policies, settings and keys always give the same
manifests, and no operator version appears in them, so an operator upgrade rolls no pod.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from memory_operator import images
from memory_operator.api.client import ClientGrant
from memory_operator.api.erasure import ErasureEntry
from memory_operator.api.policy import MemoryPolicy
from memory_operator.api.store import MemoryStore, ServerFlavor
from memory_operator.render import (
    backup,
    canary,
    clients,
    collection,
    disruption,
    erasure,
    expiration,
    jobs,
    names,
    network,
    openmemory,
    qdrant,
    server,
    tls,
    upgrade,
)
from memory_operator.render import credentials as credentials_
from memory_operator.render.credentials import Credentials
from memory_operator.render.meta import Images
from memory_operator.render.network import Scraper

__all__ = ["Credentials", "Directives", "RenderSettings", "Scraper", "names", "render_store"]


def _default_operator_pod_labels() -> Mapping[str, str]:
    return {"app.kubernetes.io/name": "memory-operator"}


@dataclass(frozen=True)
class RenderSettings:
    """What the operator's deployment decides, as opposed to the store's spec."""

    job_image: str = images.DEFAULT_JOB_IMAGE
    """Image of the expiration, backup and restore jobs."""
    operator_namespace: str | None = None
    """Namespace of the operator's pods; the NetworkPolicy lets them reach Qdrant (any namespace if unset)."""
    operator_pod_labels: Mapping[str, str] = field(default_factory=_default_operator_pod_labels)
    """Labels of the operator's pods."""
    image_registry: str | None = None
    """Registry every default image is pulled from (Qdrant, both server flavors, the jobs); images a
    store or `job_image` names in full are used as given."""
    image_pull_secrets: Sequence[str] = ()
    """Secrets every store's pods pull their images with, before the store's own."""
    metrics_scraper: Scraper | None = None
    """The pods (a Prometheus) that the Qdrant NetworkPolicies let reach Qdrant's `/metrics`."""
    cert_manager: bool = True
    """Whether the cluster serves cert-manager's Certificates (the operator learns it from the API);
    without, a store that names an issuer (`tls.issuerRef`) is refused."""

    @property
    def images(self) -> Images:
        return Images(registry=self.image_registry, pull_secrets=tuple(self.image_pull_secrets))

    @property
    def jobs_image(self) -> str:
        """The jobs' image: `job_image`, or the default moved to the registry."""
        return self.images.default_or_given(self.job_image, images.DEFAULT_JOB_IMAGE)


@dataclass(frozen=True)
class Directives:
    """What the controller decided for this reconcile beyond the spec, from the objects it observed.

    `memory-operator render` derives them from the same objects given as input, so that what it prints
    is what the operator applies.
    """

    backups: Sequence[str] = ()
    """MemoryBackups of the store whose Jobs run now (one at a time)."""
    restore: bool = False
    """Run the restore Job of `spec.bootstrap.fromBackup`."""
    restore_attempt: str | None = None
    """The `retry-restore` annotation value the restore Job answers."""
    restore_source: backup.BackupSource = field(default_factory=backup.BackupSource)
    """The store the backup was taken of and where it is, from its MemoryBackup."""
    collection: bool = False
    """Run the collection Job (the collection made, or brought to the spec's settings)."""
    hold_server: bool = False
    """Run no server replica (until the restore and the collection Job have succeeded)."""
    qdrant_partition: int | None = None
    """Qdrant nodes below this ordinal keep the version they run: a rolling upgrade, node by node."""
    upgrade_check: int | None = None
    """Run the upgrade check Job after the node of this ordinal restarted on the new Qdrant image."""
    clients: Sequence[ClientGrant] | None = None
    """The MemoryClients the store's server admits (key hashes, scopes, quotas); None when the store
    has never had one: no clients Secret, nothing mounted."""
    certificates: tls.Certificates = tls.NONE
    """The store's certificates (`spec.tls`): those the operator generates, and the digest that rolls
    Qdrant's and the server's pods when they change."""
    erasures: Sequence[tuple[ErasureEntry, int]] = ()
    """MemoryErasures of the store whose Jobs run now, each with its attempt (one at a time)."""
    reapply: Sequence[ErasureEntry] = ()
    """The MemoryErasures the restore Job re-applies before the server starts (with `restore`)."""
    erasures_secret: bool = False
    """Render the erasures Secret even with nothing to erase (it exists: it is emptied)."""


# Kinds in the order they are applied, in waves: the objects of a wave are applied together, a wave once
# the one before it is applied. What pods reference (their keys, ServiceAccount, NetworkPolicy) exists
# before the pods' owners.
APPLY_WAVES: tuple[tuple[str, ...], ...] = (
    (
        "Secret",
        "Certificate",
        "ServiceAccount",
        "ConfigMap",
        "PersistentVolumeClaim",
        "Service",
        "NetworkPolicy",
    ),
    ("StatefulSet", "PodDisruptionBudget", "Job", "Deployment", "CronJob"),
)
APPLY_ORDER = [kind for wave in APPLY_WAVES for kind in wave]
_WAVE_OF_KIND = {kind: i for i, wave in enumerate(APPLY_WAVES) for kind in wave}


def _in_apply_order(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # A stable sort: within a kind, the renderers' own order is kept.
    return sorted(manifests, key=lambda m: APPLY_ORDER.index(m["kind"]))


def apply_waves(manifests: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """`manifests` (in apply order) split into the waves to apply one after another."""
    waves: list[list[Mapping[str, Any]]] = [[] for _ in APPLY_WAVES]
    for manifest in manifests:
        waves[_WAVE_OF_KIND[manifest["kind"]]].append(manifest)
    return [wave for wave in waves if wave]


def render_store(
    store: MemoryStore,
    policies: Sequence[MemoryPolicy] = (),
    settings: RenderSettings = RenderSettings(),  # frozen, so a shared default is safe
    credentials: Credentials | None = None,
    directives: Directives = Directives(),  # frozen, so a shared default is safe
) -> list[dict[str, Any]]:
    """Every child manifest of `store`, in apply order.

    `policies` are those that select the store. Secrets are rendered only when `credentials` is given:
    the controller generates keys once and passes the same ones ever after. `directives` add the Jobs
    of backups and of a restore, and hold the server while a restore runs.
    """
    manifests: list[dict[str, Any]] = []
    if credentials is not None:
        manifests += credentials_.render(store, credentials)
        manifests += tls.secrets(store, directives.certificates.generated)
    certificate = tls.certificate(store)
    if certificate is not None:
        manifests.append(certificate)
    # Every job of the store runs as the store's own jobs ServiceAccount, with no API token.
    manifests.append(jobs.service_account(store))
    jobs_account = names.jobs_service_account_name(store)
    pulled = settings.images
    certificates = directives.certificates
    manifests += qdrant.render(store, pulled, directives.qdrant_partition, certificates)
    if store.spec.server.flavor == ServerFlavor.openmemory:
        manifests += openmemory.render(store, directives.hold_server, pulled)
    else:
        served = directives.clients is not None
        manifests += server.render(
            store, directives.hold_server, pulled, clients=served, certificates=certificates
        )
        if credentials is not None and directives.clients is not None:
            manifests.append(clients.clients_secret(store, directives.clients))
    manifests += network.render(
        store, settings.operator_namespace, settings.operator_pod_labels, settings.metrics_scraper
    )
    manifests += disruption.render(store)
    manifests += expiration.render(store, list(policies), settings.jobs_image, jobs_account, pulled)
    manifests += backup.render(
        store,
        settings.jobs_image,
        jobs_account,
        backups=directives.backups,
        restore=directives.restore,
        restore_attempt=directives.restore_attempt,
        restore_source=directives.restore_source,
        images=pulled,
    )
    manifests += canary.render(store, settings.jobs_image, jobs_account, pulled)
    if credentials is not None:
        manifests += erasure.render(
            store,
            settings.jobs_image,
            jobs_account,
            run=directives.erasures,
            reapply=directives.reapply if directives.restore else None,
            secret=directives.erasures_secret,
            images=pulled,
        )
    if directives.collection:
        manifests.append(collection.collection_job(store, settings.jobs_image, jobs_account, pulled))
    if directives.upgrade_check is not None:
        target = qdrant.image(store, pulled)
        manifests.append(
            upgrade.check_job(
                store, target, directives.upgrade_check, settings.jobs_image, jobs_account, pulled
            )
        )
    return _in_apply_order(manifests)
