"""The baseline of benchmarks/controller_scale.py: a bare Kopf operator that server-side applies the same
rendered children of each new MemoryStore and patches its status, nothing else (no cache, no decisions).

    kopf run --standalone --all-namespaces benchmarks/baseline_operator.py
"""

from __future__ import annotations

from typing import Any

import kopf
from kubernetes import config

from memory_operator.api.store import MemoryStore
from memory_operator.controller.kube import Kube, api_client
from memory_operator.controller.plan import owned, stamped
from memory_operator.render import Credentials, Directives, render_store

config.load_kube_config()
KUBE = Kube(api_client())
KEYS = Credentials("rw", "ro", "qdrant")
# What memory-operator applies to a new store: its collection Job, and no server replica until it is done.
NEW_STORE = Directives(collection=True, hold_server=True)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.queueing.worker_limit = None
    settings.queueing.idle_timeout = 1.0
    settings.posting.enabled = False


@kopf.on.create("memory-operator.io", "v1alpha1", "memorystores")
async def apply_children(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    store = MemoryStore.model_validate(dict(body))
    for manifest in render_store(store, (), credentials=KEYS, directives=NEW_STORE):
        await KUBE.apply(stamped(owned(manifest, dict(body))))
    patch.status["phase"] = "Provisioning"
    patch.status["observedGeneration"] = body["metadata"]["generation"]
