"""The expiration tests' dataset: memories the real mem0 library wrote into Qdrant's local mode."""

from __future__ import annotations

from expire.conftest import dataset, embedding_model, store

__all__ = ["dataset", "embedding_model", "store"]
