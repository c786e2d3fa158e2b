"""A namespace being deleted is served until it is gone, so that its stores' finalizers are removed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kopf._core.reactor import observation

from memory_operator.controller import namespaces

STAGES = ("NamespaceDeletionDiscoveryFailure", "NamespaceContentRemaining", "NamespaceFinalizersRemaining")


def event(kind: str, *true: str, conditions: bool = True) -> dict[str, Any]:
    """A watch event of namespace team-a being deleted, with these conditions True (the others False)."""
    status = {"conditions": [{"type": t, "status": str(t in true)} for t in STAGES]} if conditions else {}
    meta = {"name": "team-a", "deletionTimestamp": "2026-11-29T18:30:00Z"}
    return {"type": kind, "object": {"metadata": meta, "status": status}}


# What the watch of a namespace reports while it is deleted with a store in it (Kubernetes 1.34): the
# mark, the namespace controller's first conditions (all False: pods go first), its blockers (the
# store's finalizer), and then, once the operator released the store, the deletion.
DELETION = [
    event("MODIFIED", conditions=False),
    event("MODIFIED"),
    event("MODIFIED", "NamespaceContentRemaining", "NamespaceFinalizersRemaining"),
    event("MODIFIED"),
    event("DELETED"),
]


@pytest.fixture
def served() -> Iterator[Any]:
    kopfs = observation.is_deleted

    def after(events: list[dict[str, Any]]) -> list[bool]:
        insights: Any = type("Insights", (), {"namespaces": {"team-a"}})()
        seen = []
        for one in events:
            observation.revise_namespaces(raw_events=[one], namespaces=["team-a"], insights=insights)
            seen.append("team-a" in insights.namespaces)
        return seen

    yield after
    observation.is_deleted = kopfs


def test_a_namespace_being_deleted_is_served_until_its_deletion_event(served: Any) -> None:
    namespaces.serve_namespaces_until_gone()
    assert served(DELETION) == [True, True, True, True, False]


def test_kopfs_own_rule_stops_at_the_first_conditions(served: Any) -> None:
    """Why the rule is replaced: Kopf stops serving the namespace before the store is released."""
    if served(DELETION)[1]:
        pytest.skip("this Kopf serves a namespace being deleted until it is gone")
    assert served(DELETION) == [True, False, False, False, False]
