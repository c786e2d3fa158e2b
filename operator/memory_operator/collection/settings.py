"""The collection job's settings, from the environment the operator renders (names in `env`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from qdrant_client.http import models

from memory_operator import env
from memory_operator.backup.settings import SettingsError, qdrant_peers
from memory_operator.collection_names import entities_collection

TRUE = ("true", "1", "yes")
FALSE = ("false", "0", "no")


@dataclass(frozen=True)
class CollectionSettings:
    """What the spec asks of the store's collection."""

    name: str
    vector_size: int
    distance: models.Distance = models.Distance.COSINE
    on_disk: bool = False
    shard_number: int = 1
    replication_factor: int = 1
    entities: bool = True
    """Make mem0's `<name>_entities` as well, with the same settings."""

    @property
    def collections(self) -> list[str]:
        return [self.name, entities_collection(self.name)] if self.entities else [self.name]


def _get(environ: Mapping[str, str], name: str) -> str | None:
    return environ.get(name, "").strip() or None


def _integer(environ: Mapping[str, str], name: str, default: int | None) -> int:
    text = _get(environ, name)
    if text is None:
        if default is None:
            raise SettingsError(f"set {name}")
        return default
    try:
        value = int(text)
    except ValueError as error:
        raise SettingsError(f"{name} must be a whole number, not {text!r}") from error
    if value < 1:
        raise SettingsError(f"{name} must be at least 1, not {value}")
    return value


def _boolean(environ: Mapping[str, str], name: str, default: bool) -> bool:
    text = (_get(environ, name) or "").lower()
    if not text:
        return default
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise SettingsError(f"{name} must be true or false, not {text!r}")


def _distance(environ: Mapping[str, str]) -> models.Distance:
    text = _get(environ, env.COLLECTION_DISTANCE)
    if text is None:
        return models.Distance.COSINE
    for distance in models.Distance:
        if distance.value.lower() == text.lower():
            return distance
    choices = ", ".join(d.value for d in models.Distance)
    raise SettingsError(f"{env.COLLECTION_DISTANCE} must be one of {choices}, not {text!r}")


def collection_settings(environ: Mapping[str, str] = os.environ) -> CollectionSettings:
    name = _get(environ, env.COLLECTION)
    if not name:
        raise SettingsError(f"set {env.COLLECTION} to the store's collection")
    return CollectionSettings(
        name=name,
        vector_size=_integer(environ, env.COLLECTION_VECTOR_SIZE, None),
        distance=_distance(environ),
        on_disk=_boolean(environ, env.COLLECTION_ON_DISK, False),
        shard_number=_integer(environ, env.COLLECTION_SHARD_NUMBER, 1),
        replication_factor=_integer(environ, env.COLLECTION_REPLICATION_FACTOR, 1),
        entities=_boolean(environ, env.COLLECTION_ENTITIES, True),
    )


def peers(environ: Mapping[str, str] = os.environ) -> list[str]:
    """Every Qdrant node, as for the backup: all of them must have joined before the job acts."""
    return qdrant_peers(environ)
