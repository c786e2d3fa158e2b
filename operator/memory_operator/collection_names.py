"""The Qdrant collections of a store besides its memories, each named after the memory collection."""

from __future__ import annotations

# mem0's graph side: entity records extracted from memory texts (named as mem0 names it for Qdrant).
ENTITIES_SUFFIX = "_entities"
# The builtin server's app states (`memory_operator.server.apps`): one point per owner and app.
APPS_SUFFIX = "_apps"


def entities_collection(collection: str) -> str:
    return collection + ENTITIES_SUFFIX


def apps_collection(collection: str) -> str:
    return collection + APPS_SUFFIX
