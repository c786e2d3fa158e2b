"""The backup and restore roles' settings, read from the environment the operator renders."""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from memory_operator import env
from memory_operator.backup.destination import Destination, DirectoryDestination, S3Destination
from memory_operator.backup.retention import parse_duration

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class SettingsError(Exception):
    """A required setting is missing or malformed."""


def _get(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def qdrant_peers(environ: Mapping[str, str] = os.environ) -> list[str]:
    """Every Qdrant node to work on: the peers in distributed mode, else the one node."""
    peers = [p.strip().rstrip("/") for p in (_get(environ, env.QDRANT_PEERS) or "").split(",") if p.strip()]
    if peers:
        return peers
    url = _get(environ, env.QDRANT_URL)
    if not url:
        raise SettingsError(f"set {env.QDRANT_URL} (or {env.QDRANT_PEERS} in distributed mode)")
    return [url.rstrip("/")]


def collection(environ: Mapping[str, str] = os.environ) -> str:
    name = _get(environ, env.COLLECTION)
    if not name:
        raise SettingsError(f"set {env.COLLECTION} to the store's collection")
    return name


def has_destination(environ: Mapping[str, str] = os.environ) -> bool:
    return bool(_get(environ, env.BACKUP_S3_BUCKET) or _get(environ, env.BACKUP_DIR))


def destination_at(location: str, store: str, backup: str) -> Destination:
    """The destination holding a backup, from its reported location (`s3://bucket/prefix/store/backup/`).

    For a store restored from a backup without a destination of its own: the S3 endpoint, region and
    credentials are then the AWS SDK's own (`AWS_ENDPOINT_URL`, `AWS_REGION`, a role).
    """
    suffix = f"{store}/{backup}/"
    if location.startswith("s3://"):
        bucket, _, key = location[len("s3://") :].partition("/")
        if not bucket or not key.endswith(suffix):
            raise SettingsError(f"backup location {location} does not end with {suffix}")
        return S3Destination.connect(bucket, prefix=key[: -len(suffix)])
    if location.startswith("pvc://"):
        claim = location[len("pvc://") :].split("/", 1)[0]
        raise SettingsError(
            f"backup {backup} is on claim {claim}: give the store spec.backup.destination.pvc.claimName "
            f"{claim} so that the restore job mounts it"
        )
    raise SettingsError(f"backup location {location} is not one the restore can read")


def destination(environ: Mapping[str, str] = os.environ) -> Destination:
    """An S3 destination when a bucket is set, else the directory."""
    bucket = _get(environ, env.BACKUP_S3_BUCKET)
    if bucket:
        return S3Destination.connect(
            bucket,
            prefix=_get(environ, env.BACKUP_S3_PREFIX) or "",
            endpoint=_get(environ, env.BACKUP_S3_ENDPOINT),
            region=_get(environ, env.BACKUP_S3_REGION),
        )
    directory = _get(environ, env.BACKUP_DIR)
    if directory:
        return DirectoryDestination(Path(directory), claim=_get(environ, env.BACKUP_CLAIM_NAME))
    raise SettingsError(f"set {env.BACKUP_S3_BUCKET} or {env.BACKUP_DIR} to say where backups go")


@dataclass(frozen=True)
class Retention:
    max_count: int | None = None
    max_age: datetime.timedelta | None = None


def retention(environ: Mapping[str, str] = os.environ) -> Retention:
    count = _get(environ, env.BACKUP_MAX_COUNT)
    age = _get(environ, env.BACKUP_MAX_AGE)
    try:
        max_count = int(count) if count else None
        max_age = parse_duration(age) if age else None
    except ValueError as error:
        raise SettingsError(f"invalid retention setting: {error}") from error
    if max_count is not None and max_count < 1:
        raise SettingsError(f"{env.BACKUP_MAX_COUNT} must be at least 1")
    return Retention(max_count, max_age)


def namespace(explicit: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """The namespace given, else the store's from the environment, else the service account's."""
    found = explicit or _get(environ, env.STORE_NAMESPACE)
    if not found and SERVICE_ACCOUNT_NAMESPACE.exists():
        found = SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    if not found:
        raise SettingsError(f"cannot tell the namespace: pass --namespace or set {env.STORE_NAMESPACE}")
    return found
