"""The operator's own streams keep an index of the shape of Kopf's, for `Cache` to read alike."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any

import kopf
import pytest
from kopf._cogs.clients.watching import Bookmark
from kopf._core.engines import posting

from memory_operator import labels
from memory_operator.controller import informer
from memory_operator.controller.cache import INDEXED, INFORMED, WORKLOADS, Cache, children_index_entry
from memory_operator.controller.handlers import register_all
from memory_operator.controller.informer import InformedIndex, Informers, Stream

from .test_kopf_settings import bare_context

CONFIGMAPS = next(kind for kind in INFORMED if kind.kind == "ConfigMap")


def configmap(
    name: str, store: str | None = "agents", namespace: str = "team-a", value: str = "1"
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "resourceVersion": value}
    if store:
        meta["labels"] = {labels.STORE: store}
    return {"metadata": meta, "data": {"value": value}}


def stream(namespace: str | None = None) -> Stream:
    return Stream(InformedIndex(), children_index_entry(CONFIGMAPS), namespace)


def listed(s: Stream, *bodies: dict[str, Any]) -> None:
    s.begin_listing()
    for body in bodies:
        s.take({"type": None, "object": body})
    s.take(Bookmark.LISTED)


def names(s: Stream, namespace: str = "team-a", store: str = "agents") -> list[str]:
    cache = Cache({CONFIGMAPS.index_id: s.index})
    return sorted(obj["metadata"]["name"] for obj in cache.children(namespace, store))


def test_a_listing_then_the_watch_keep_a_stores_children() -> None:
    s = stream()
    listed(
        s, configmap("a"), configmap("b"), configmap("other", store="research"), configmap("mine", store=None)
    )
    assert s.listed.is_set()
    assert names(s) == ["a", "b"]
    assert names(s, store="research") == ["other"]
    s.take({"type": "ADDED", "object": configmap("c")})
    s.take({"type": "MODIFIED", "object": configmap("a", value="2")})
    s.take({"type": "DELETED", "object": configmap("b")})
    s.take({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}})
    assert names(s) == ["a", "c"]
    cache = Cache({CONFIGMAPS.index_id: s.index})
    modified = next(o for o in cache.children("team-a", "agents") if o["metadata"]["name"] == "a")
    assert modified["data"] == {"value": "2"}
    assert modified["kind"] == "ConfigMap" and modified["apiVersion"] == "v1"


def test_a_child_whose_store_label_changes_moves_to_that_store_or_out() -> None:
    s = stream()
    listed(s, configmap("a"))
    s.take({"type": "MODIFIED", "object": configmap("a", store="research")})
    assert names(s) == [] and names(s, store="research") == ["a"]
    s.take({"type": "MODIFIED", "object": configmap("a", store=None)})
    assert names(s, store="research") == []
    assert "team-a" not in {key[0] for key in s.index}


def test_a_new_listing_drops_what_was_deleted_while_no_stream_was_open() -> None:
    s = stream()
    listed(s, configmap("a"), configmap("b"))
    listed(s, configmap("b", value="3"))
    assert names(s) == ["b"]
    listed(s)
    assert names(s) == []


def test_a_listing_cut_short_counts_for_nothing() -> None:
    s = stream()
    listed(s, configmap("a"), configmap("b"))
    s.begin_listing()
    s.take({"type": None, "object": configmap("a")})  # the connection drops here
    listed(s, configmap("b"))
    assert names(s) == ["b"]


def test_a_namespaces_listing_drops_nothing_of_another_namespace() -> None:
    index = InformedIndex()
    a = Stream(index, children_index_entry(CONFIGMAPS), "team-a")
    b = Stream(index, children_index_entry(CONFIGMAPS), "team-b")
    listed(a, configmap("x"))
    listed(b, configmap("y", namespace="team-b"))
    listed(a)
    assert names(b, namespace="team-b") == ["y"]
    assert names(a) == []


def fake_watch(runs: list[list[Any]], calls: list[str | None]) -> Any:
    """`continuous_watch` playing one list of events per call (an exception ends a run with it), then
    waiting forever."""

    async def watch(*, namespace: str | None, **_: Any) -> AsyncIterator[Any]:
        calls.append(namespace)
        for event in runs.pop(0) if runs else []:
            if isinstance(event, BaseException):
                raise event
            yield event
        await asyncio.Event().wait()

    return watch


async def test_streams_list_then_come_back_after_a_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(informer, "RETRY_SECONDS", 0.01)
    calls: list[str | None] = []
    runs = [
        [{"type": None, "object": configmap("a")}, Bookmark.LISTED, RuntimeError("refused")],
        [{"type": None, "object": configmap("b")}, Bookmark.LISTED],
    ]
    monkeypatch.setattr(informer, "continuous_watch", fake_watch(runs, calls))
    settings = kopf.OperatorSettings()
    settings.watching.reconnect_backoff = 0.01
    informers = Informers((CONFIGMAPS,))
    informers.start(settings, ["team-a"])
    await informers.listed()
    cache = Cache.of({}, informers.indexes)
    assert [o["metadata"]["name"] for o in cache.children("team-a", "agents")] in (["a"], ["b"])
    for _ in range(200):
        if len(calls) == 2:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert calls == ["team-a", "team-a"]
    assert [o["metadata"]["name"] for o in cache.children("team-a", "agents")] == ["b"]
    informers.start(settings, ["team-a"])  # again: no second stream
    assert len(calls) == 2
    await informers.stop()


async def test_each_namespace_gets_its_own_stream_and_cluster_wide_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str | None] = []
    runs = [[Bookmark.LISTED] for _ in range(4)]
    monkeypatch.setattr(informer, "continuous_watch", fake_watch(runs, calls))
    namespaced = Informers((CONFIGMAPS,))
    namespaced.start(kopf.OperatorSettings(), ["team-a", "team-b"])
    await namespaced.listed()
    await namespaced.stop()
    everywhere = Informers((CONFIGMAPS,))
    everywhere.start(kopf.OperatorSettings(), None)
    await everywhere.listed()
    await everywhere.stop()
    assert calls == ["team-a", "team-b", None]


def test_kopf_watches_only_the_children_a_handler_answers() -> None:
    """The informed kinds have no Kopf index or handler: Kopf does not watch them at all."""
    registry = kopf.OperatorRegistry()
    register_all(registry, bare_context())
    watched = {
        (handler.selector.group, handler.selector.plural or handler.selector.any_name)
        for handler in (*registry._indexing.get_all_handlers(), *registry._watching.get_all_handlers())
        if handler.selector
    }
    assert not {(kind.group, kind.plural) for kind in INFORMED} & watched
    assert {(kind.group, kind.plural) for kind in INDEXED} <= watched


async def test_a_handler_reads_the_cache_only_once_the_streams_have_listed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = asyncio.Event()

    async def watch(*, resource: Any, **_: Any) -> AsyncIterator[Any]:
        await gate.wait()
        if resource.plural == CONFIGMAPS.plural:
            yield {"type": None, "object": configmap("a")}
        yield Bookmark.LISTED
        await asyncio.Event().wait()

    monkeypatch.setattr(informer, "continuous_watch", watch)
    context = bare_context()
    context.informers.start(kopf.OperatorSettings(), ["team-a"])
    reading = asyncio.create_task(context.cache({}))
    await asyncio.sleep(0.05)
    assert not reading.done()
    gate.set()
    cache = await asyncio.wait_for(reading, 5)
    assert [o["metadata"]["name"] for o in cache.children("team-a", "agents")] == ["a"]
    await context.informers.stop()


async def test_each_event_is_handed_to_the_kinds_reaction_and_what_it_starts_runs() -> None:
    seen: list[tuple[str | None, str]] = []
    ran: list[str] = []

    async def work(name: str) -> None:
        ran.append(name)

    def reaction(event_type: str | None, body: Mapping[str, Any]) -> Awaitable[None] | None:
        name = body["metadata"]["name"]
        seen.append((event_type, name))
        return work(name) if name != "quiet" else None

    s = Stream(InformedIndex(), children_index_entry(CONFIGMAPS), None, reaction)
    listed(s, configmap("a"))
    s.take({"type": "MODIFIED", "object": configmap("quiet")})
    s.take({"type": "DELETED", "object": configmap("a")})
    s.take({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}})
    await asyncio.sleep(0)
    assert seen == [(None, "a"), ("MODIFIED", "quiet"), ("DELETED", "a")]
    assert ran == ["a", "a"]


async def test_a_failing_reaction_is_logged_and_the_stream_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    async def fail() -> None:
        raise RuntimeError("reconcile failed")

    s = Stream(InformedIndex(), children_index_entry(CONFIGMAPS), None, lambda _type, _body: fail())
    s.take({"type": "ADDED", "object": configmap("a")})
    s.take({"type": "ADDED", "object": configmap("b")})
    for _ in range(3):
        await asyncio.sleep(0)
    assert names(s) == ["a", "b"]
    assert [r for r in caplog.records if "reaction" in r.getMessage() and r.levelname == "ERROR"]


async def test_work_outside_handlers_waits_until_a_handler_has_shown_kopfs_indexes() -> None:
    context = bare_context()
    reading = asyncio.create_task(context.cache_now())
    await asyncio.sleep(0.05)
    assert not reading.done()
    stores: dict[Any, Any] = {"team-a": [{"metadata": {"name": "agents", "namespace": "team-a"}}]}
    await context.cache({"index_memorystores": stores, "unrelated": 1})
    cache = await asyncio.wait_for(reading, 5)
    assert cache.store("team-a", "agents") is not None


async def test_a_workloads_news_reconciles_its_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """The store handlers answer StatefulSets' and Deployments' events from the streams, as Kopf handlers
    answered them: a change of what a reconcile reads observes the store; an echo does not."""
    context = bare_context()
    register_all(kopf.OperatorRegistry(), context)
    asked: list[tuple[str, str, str, bool]] = []

    async def reconcile_soon(cache: Cache, namespace: str, name: str, **kwargs: Any) -> None:
        asked.append((namespace, name, kwargs["trigger"], kwargs["observation"]))

    monkeypatch.setattr(context.reconciler, "reconcile_soon", reconcile_soon)
    await context.cache({})  # a Kopf handler has run
    for workload in WORKLOADS:
        reaction = context.informers._reactions[workload.index_id]
        body = {
            "kind": workload.kind,
            "metadata": {
                "name": "agents-x",
                "namespace": "team-a",
                "uid": workload.kind,
                "labels": {labels.STORE: "agents"},
            },
            "status": {"readyReplicas": 1},
        }
        started = reaction("MODIFIED", body)
        assert started is not None
        await started
        assert reaction("MODIFIED", body) is None  # nothing it reads changed
        assert reaction("MODIFIED", {**body, "metadata": {**body["metadata"], "labels": {}}}) is None
    assert asked == [("team-a", "agents", "child", True)] * 2


async def test_a_paused_replica_does_not_answer_a_workloads_news(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kopf pauses a replica while a peer reconciles; the operator's streams go on there, but their
    reactions reconcile nothing."""

    class Paused:
        async def active(self, kube: Any, now: float) -> bool:
            return False

    peering: Any = Paused()
    context = dataclasses.replace(bare_context(), peering=peering)
    register_all(kopf.OperatorRegistry(), context)
    asked: list[str] = []

    async def reconcile_soon(cache: Cache, namespace: str, name: str, **kwargs: Any) -> None:
        asked.append(name)

    monkeypatch.setattr(context.reconciler, "reconcile_soon", reconcile_soon)
    await context.cache({})
    reaction = context.informers._reactions[WORKLOADS[0].index_id]
    body = {
        "kind": "StatefulSet",
        "metadata": {
            "name": "agents-q",
            "namespace": "team-a",
            "uid": "q",
            "labels": {labels.STORE: "agents"},
        },
    }
    started = reaction("ADDED", body)
    assert started is not None
    await started
    assert asked == []


async def test_work_outside_handlers_posts_events_into_kopfs_queue() -> None:
    """Kopf sets its Event queue only in the tasks of its handlers; a reaction's reconcile or a timer's
    posts its Events all the same (Kopf then writes them)."""
    context = bare_context()
    queue: asyncio.Queue[Any] = asyncio.Queue()

    async def handler() -> None:  # as Kopf runs one: the queue set in its task
        posting.event_queue_loop_var.set(asyncio.get_running_loop())
        posting.event_queue_var.set(queue)
        await context.cache({})

    await asyncio.create_task(handler())

    async def outside() -> None:
        posting.settings_var.set(kopf.OperatorSettings())  # Kopf sets this one for every task
        await context.cache_now()
        target = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "n", "uid": "u"}}
        kopf.info(target, reason="Rolling", message="node 2 of 3")

    await asyncio.wait_for(asyncio.create_task(outside(), context=contextvars.Context()), 5)
    assert queue.get_nowait().reason == "Rolling"
