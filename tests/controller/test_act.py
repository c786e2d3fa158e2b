"""Act: a store's children are applied in waves, each wave at once, what pods reference first."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import kopf
import pytest
from kubernetes.client.exceptions import ApiException

from memory_operator.controller import act
from memory_operator.controller.child_events import STATUS_FIELDS
from memory_operator.controller.decide import Decision, Finalizer
from memory_operator.controller.kube import JSON_PATCH
from memory_operator.render import APPLY_WAVES, apply_waves

POD_OWNERS = {"StatefulSet", "Deployment", "Job", "CronJob"}


def manifest(kind: str, name: str = "a") -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": f"{name}-{kind.lower()}", "namespace": "ns"}}


class Kube:
    """Records when each apply (and patch) starts and ends; an apply of `failing` kinds is refused, a
    patch answered with `patched` (an ApiException is raised)."""

    def __init__(
        self,
        failing: frozenset[str] = frozenset(),
        slow: frozenset[str] = frozenset(),
        patched: Any = True,
    ) -> None:
        self.log: list[tuple[str, str]] = []
        self.failing = failing
        self.slow = slow
        self.patched = patched
        self.patches: list[tuple[str, str, Any, str]] = []

    async def patch(self, resource: Any, namespace: str, name: str, patch: Any, content_type: str) -> Any:
        self.log.append(("start", "finalizer"))
        self.patches.append((resource.kind, name, patch, content_type))
        await asyncio.sleep(0.05)
        self.log.append(("end", "finalizer"))
        if isinstance(self.patched, ApiException):
            raise self.patched
        return {"patched": True} if self.patched else None

    async def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        kind = manifest["kind"]
        self.log.append(("start", kind))
        await asyncio.sleep(0.2 if kind in self.slow else 0.01)
        self.log.append(("end", kind))
        if kind in self.failing:
            raise ApiException(status=422, reason=f"{kind} refused")
        return {**manifest, "applied": True}

    async def apply_unanswered(self, manifest: Mapping[str, Any]) -> None:
        await self.apply(manifest)


def run(
    kube: Kube, manifests: list[dict[str, Any]], finalizer: Finalizer | None = None
) -> list[Mapping[str, Any]]:
    written: list[Mapping[str, Any]] = []

    def write(body: Mapping[str, Any]) -> None:
        kube.log.append(("written", body["kind"]))
        written.append(body)

    decision = Decision(status=None, apply=manifests, finalizer=finalizer)
    asyncio.run(act.act(kube, "ns", decision, "create", write))  # type: ignore[arg-type]
    return written


NEW_STORE = [
    manifest(kind)
    for kind in ("Secret", "ServiceAccount", "Service", "NetworkPolicy", "StatefulSet", "Job", "Deployment")
]


def test_every_kind_applied_is_in_one_wave_and_pod_owners_come_last() -> None:
    kinds = [kind for wave in APPLY_WAVES for kind in wave]
    assert len(kinds) == len(set(kinds))
    assert set(APPLY_WAVES[-1]) >= POD_OWNERS
    assert not POD_OWNERS & {kind for wave in APPLY_WAVES[:-1] for kind in wave}


def test_waves_keep_the_apply_order_within_them() -> None:
    manifests = [manifest("Secret", "x"), manifest("Secret", "y"), manifest("Service"), manifest("Job")]
    assert apply_waves(manifests) == [manifests[:3], manifests[3:]]
    assert apply_waves([manifest("Deployment")]) == [[manifest("Deployment")]]
    assert apply_waves([]) == []


def test_a_wave_is_applied_at_once_and_pod_owners_after_what_they_reference() -> None:
    kube = Kube()
    written = run(kube, NEW_STORE)
    starts = [i for i, (what, _) in enumerate(kube.log) if what == "start"]
    ends = [i for i, (what, _) in enumerate(kube.log) if what == "end"]
    first_owner = min(i for i, (what, kind) in enumerate(kube.log) if what == "start" and kind in POD_OWNERS)
    # The four objects pods reference were all in flight together, and answered before any owner started.
    assert starts[:4] == [0, 1, 2, 3]
    assert max(ends[:4]) < first_owner
    # The owners were in flight together too.
    assert [kind for what, kind in kube.log[first_owner : first_owner + 3]] == [
        "StatefulSet",
        "Job",
        "Deployment",
    ]
    # Every object whose status a reconcile reads is told as the apply left it; no other is.
    assert sorted(w["kind"] for w in written) == sorted(STATUS_FIELDS)
    assert all(w["applied"] for w in written)


def test_each_object_is_told_as_soon_as_applied_not_when_its_wave_is() -> None:
    """Before the watch's echo of the write arrives, which would otherwise count as news."""
    kube = Kube(slow=frozenset({"Deployment"}))
    run(kube, NEW_STORE)
    assert kube.log.index(("written", "StatefulSet")) < kube.log.index(("end", "Deployment"))


def test_a_refused_object_stops_the_next_waves_once_its_own_wave_has_answered() -> None:
    kube = Kube(failing=frozenset({"Service"}))
    with pytest.raises(ApiException, match="Service refused"):
        run(kube, NEW_STORE)
    applied = [kind for what, kind in kube.log if what == "end"]
    assert sorted(applied) == ["NetworkPolicy", "Secret", "Service", "ServiceAccount"]
    assert not POD_OWNERS & {kind for _, kind in kube.log}


FINALIZER = Finalizer("a", [{"op": "add", "path": "/metadata/finalizers", "value": ["f"]}])


def test_the_finalizer_goes_on_with_the_first_wave_before_any_pod_owner() -> None:
    kube = Kube()
    run(kube, NEW_STORE, FINALIZER)
    assert kube.patches == [("MemoryStore", "a", FINALIZER.patch, JSON_PATCH)]
    first_owner = min(i for i, (what, kind) in enumerate(kube.log) if what == "start" and kind in POD_OWNERS)
    # In flight with the first wave (not a round of its own), answered before the StatefulSet started.
    assert kube.log.index(("start", "finalizer")) < kube.log.index(("end", "Secret"))
    assert kube.log.index(("end", "finalizer")) < first_owner
    # Nothing else to apply: the finalizer still goes on.
    kube = Kube()
    run(kube, [], FINALIZER)
    assert len(kube.patches) == 1


@pytest.mark.parametrize(
    "answer", [ApiException(status=422, reason="test failed"), ApiException(status=409), None]
)
def test_a_store_changed_or_gone_before_its_finalizer_gets_no_pod_owner(answer: Any) -> None:
    """Its volumes would be made by a StatefulSet with nothing to release them: the handler is retried."""
    kube = Kube(patched=answer)
    with pytest.raises(kopf.TemporaryError, match="changed while its finalizer was added"):
        run(kube, NEW_STORE, FINALIZER)
    assert not POD_OWNERS & {kind for _, kind in kube.log}


def test_a_failed_finalizer_patch_for_another_reason_is_raised_as_is() -> None:
    kube = Kube(patched=ApiException(status=403, reason="forbidden"))
    with pytest.raises(ApiException, match="forbidden"):
        run(kube, NEW_STORE, FINALIZER)
