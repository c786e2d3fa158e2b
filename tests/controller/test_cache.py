"""The cache keeps each object compressed and gives back an equal, fresh copy."""

from __future__ import annotations

import json

from memory_operator.api.store import MemoryStore
from memory_operator.controller.cache import Packed
from memory_operator.render import Credentials, render_store


def children(name: str, spec: dict[str, object]) -> list[dict[str, object]]:
    store = MemoryStore.model_validate(
        {"metadata": {"name": name, "namespace": "team-a", "uid": "a1b2"}, "spec": spec}
    )
    return render_store(store, (), credentials=Credentials("rw-key", "ro-key", "qdrant-key"))


def test_a_packed_object_unpacks_equal_and_fresh() -> None:
    for child in children("agents", {"server": {"replicas": 3}}):
        child["status"] = {"observedGeneration": 2, "conditions": [{"type": "Ready", "status": "True"}]}
        packed = Packed.of(child)
        assert packed.name == child["metadata"]["name"]  # type: ignore[index]
        first = packed.body()
        assert first == child
        first["metadata"]["name"] = "changed"
        assert packed.body() == child


def test_the_children_of_a_store_take_a_fraction_of_their_text() -> None:
    objects = children("research-memory", {"server": {"replicas": 2}, "vectorStore": {"replicas": 3}})
    text = sum(len(json.dumps(o, separators=(",", ":"))) for o in objects)
    packed = sum(len(Packed.of(o).data) for o in objects)
    assert packed * 4 < text, (packed, text)
