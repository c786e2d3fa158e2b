"""The Kopf settings the operator runs with."""

from __future__ import annotations

import copy
from typing import Any

import kopf
import pytest

from memory_operator.api.common import GROUP
from memory_operator.controller.client_sync import ClientSync
from memory_operator.controller.handlers import Context, register_all
from memory_operator.controller.reconcile import Reconciler
from memory_operator.controller.settings import (
    KOPF_PREFIX,
    LeanDiffBaseStorage,
    Options,
    apply_kopf_settings,
    kept_diffbase,
)
from memory_operator.render import RenderSettings

KEY = "last-handled-configuration"


def store_body() -> dict[str, Any]:
    return {
        "apiVersion": "memory-operator.io/v1alpha1",
        "kind": "MemoryStore",
        "metadata": {
            "name": "s",
            "namespace": "n",
            "uid": "u",
            "generation": 3,
            "resourceVersion": "77",
            "labels": {"team": "a"},
            "annotations": {
                "memory-operator.io/paused": "false",
                f"{KOPF_PREFIX}/{KEY}": '{"spec":{}}\n',
                "kopf.zalando.org/last-handled-configuration": "{}",
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
            },
            "finalizers": ["memory-operator.io/finalizer"],
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {"f:server": {}}}}],
        },
        "spec": {"server": {"replicas": 2}, "vectorStore": {"storage": {"size": "1Gi"}}},
        "status": {"phase": "Ready", "conditions": [{"type": "Ready", "status": "True"}]},
    }


def backup_body() -> dict[str, Any]:
    return {
        "apiVersion": "memory-operator.io/v1alpha1",
        "kind": "MemoryBackup",
        "metadata": {
            "name": "b",
            "labels": {"app": "x"},
            "ownerReferences": [{"kind": "MemoryStore", "name": "s", "uid": "u"}],
            "managedFields": [{"manager": "kopf"}],
        },
        "spec": {"storeRef": {"name": "s"}},
        "status": {"phase": "Running"},
    }


def lean() -> LeanDiffBaseStorage:
    return LeanDiffBaseStorage(groups=(GROUP,), prefix=KOPF_PREFIX, key=KEY)


@pytest.mark.parametrize("make", [store_body, backup_body])
def test_the_lean_diff_base_builds_the_essence_kopf_builds_for_the_operators_resources(make: Any) -> None:
    kopfs = kopf.AnnotationsDiffBaseStorage(prefix=KOPF_PREFIX, key=KEY)
    body = make()
    untouched = copy.deepcopy(body)
    assert lean().build(body=kopf.Body(body)) == kopfs.build(body=kopf.Body(body))
    assert body == untouched
    patch_kopf, patch_lean = kopf.Patch(), kopf.Patch()
    essence = lean().build(body=kopf.Body(body))
    kopfs.store(body=kopf.Body(body), patch=patch_kopf, essence=essence)
    lean().store(body=kopf.Body(body), patch=patch_lean, essence=essence)
    assert patch_lean == patch_kopf


def test_other_kinds_get_an_empty_essence() -> None:
    statefulset = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "x"}, "spec": {}}
    assert lean().build(body=kopf.Body(statefulset)) == {}
    assert lean().build(body=kopf.Body({"apiVersion": "v1", "kind": "Secret", "metadata": {}})) == {}


def test_only_the_operators_resources_have_change_handlers_or_timers() -> None:
    """The children's essence is empty: a handler that would compare it must be on the operator's kinds."""
    registry = kopf.OperatorRegistry()
    register_all(registry, bare_context())
    handlers = [*registry._changing.get_all_handlers(), *registry._spawning.get_all_handlers()]
    assert handlers
    assert {handler.selector.group for handler in handlers if handler.selector} == {GROUP}


def test_the_lean_diff_base_shares_nothing_with_the_object() -> None:
    body = store_body()
    essence = lean().build(body=kopf.Body(body))
    essence["spec"]["server"]["replicas"] = 9
    essence["metadata"]["labels"]["team"] = "b"
    assert body["spec"]["server"]["replicas"] == 2
    assert body["metadata"]["labels"]["team"] == "a"


def test_extra_fields_a_handler_asks_for_are_kept_as_kopf_keeps_them() -> None:
    body = kopf.Body(store_body())
    fields = [("status", "phase")]
    kopfs = kopf.AnnotationsDiffBaseStorage(prefix=KOPF_PREFIX, key=KEY).build(body=body, extra_fields=fields)
    built = lean().build(body=body, extra_fields=fields)
    assert built == kopfs
    assert built["status"] == {"phase": "Ready"}


def bare_context() -> Context:
    """The handlers' context, with a client that must not be called."""
    kube: Any = object()
    return Context(kube, Reconciler(kube, RenderSettings()), ClientSync(kube), RenderSettings(), options())


def options() -> Options:
    return Options(
        namespaces=(),
        all_namespaces=True,
        liveness_port=0,
        metrics_port=0,
        bind_address="127.0.0.1",
        job_image=None,
        operator_namespace=None,
        log_format="text",
        verbose=False,
        resync_seconds=300,
        schedule_check_seconds=60,
        peering=None,
        peering_lifetime=60,
        worker_limit=None,
    )


def test_the_operator_runs_with_the_lean_diff_base() -> None:
    settings = kopf.OperatorSettings()
    apply_kopf_settings(settings, options())
    assert isinstance(settings.persistence.diffbase_storage, LeanDiffBaseStorage)


def test_watches_are_filtered_on_the_server() -> None:
    """Children by the operator's label; job pods by it and by phase (only finished ones)."""
    settings = kopf.OperatorSettings()
    apply_kopf_settings(settings, options())
    managed = "app.kubernetes.io/managed-by=memory-operator"

    def selectors(group: str, plural: str) -> tuple[list[str], list[str]]:
        resource = kopf.Resource(group, "v1", plural)
        labels = settings.watching.label_selectors.collect(resource)
        return list(labels), list(settings.watching.field_selectors.collect(resource))

    assert selectors("apps", "statefulsets") == ([managed], [])
    assert selectors("", "secrets") == ([], [])
    labels, fields = selectors("", "pods")
    assert labels == [f"{managed},app.kubernetes.io/name=memory-operator"]
    assert fields == ["status.phase!=Pending,status.phase!=Running"]


def test_kopf_waits_for_its_own_patch_longer_than_a_bursts_watch_lag() -> None:
    """With Kopf's 5 s, a store created among 300 at once was reconciled as new twice: the event from
    before Kopf's patch (without its annotations) came after the wait and looked unhandled."""
    settings = kopf.OperatorSettings()
    apply_kopf_settings(settings, options())
    assert settings.persistence.consistency_timeout >= 30


def test_the_last_handled_essence_is_kept_in_memory_and_written_nowhere() -> None:
    """Kopf patches an object only to store its essence when the storage puts it in the patch: the kept
    storage does not, so a handled change costs no write of Kopf's."""
    kept = kept_diffbase()
    body = kopf.Body(store_body())
    assert kept.fetch(body=body) is None  # the annotation of an earlier version is not read
    essence = kept.build(body=body)
    assert f"{KOPF_PREFIX}/{KEY}" not in essence["metadata"]["annotations"]
    patch = kopf.Patch()
    kept.store(body=body, patch=patch, essence=essence)
    assert not patch
    assert kept.fetch(body=body) == essence
    other = kopf.Body({**store_body(), "metadata": {**store_body()["metadata"], "uid": "v"}})
    assert kept.fetch(body=other) is None
    kept.forget("u")
    assert kept.fetch(body=body) is None


def test_the_operator_keeps_the_essences_its_handlers_forget() -> None:
    context = bare_context()
    settings = kopf.OperatorSettings()
    apply_kopf_settings(settings, options(), context.diffbase)
    assert settings.persistence.diffbase_storage is context.diffbase


async def test_a_deleted_store_or_policy_leaves_no_essence_behind() -> None:
    context = bare_context()
    registry = kopf.OperatorRegistry()
    register_all(registry, context)
    handlers = {h.id: h.fn for h in registry._watching.get_all_handlers()}
    for handler_id, kind in (("store-gone", "MemoryStore"), ("policy-event", "MemoryPolicy")):
        body = kopf.Body(
            {**store_body(), "kind": kind, "metadata": {**store_body()["metadata"], "uid": kind}}
        )
        patch = kopf.Patch()
        context.diffbase.store(body=body, patch=patch, essence=context.diffbase.build(body=body))
        context.kopf_indexed.set()
        await handlers[handler_id](
            type="DELETED", body=body, namespace="n", name="s", uid=kind, **{"index_memorystores": {}}
        )
        assert context.diffbase.fetch(body=body) is None, handler_id
