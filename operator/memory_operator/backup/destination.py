"""Where backups live: a directory on a volume or an S3 bucket, behind one small interface.

Layout (both kinds): `<prefix>/<store>/<backup>/<collection>/node-<n>/<snapshot file>` and, written last,
`<prefix>/<store>/<backup>/manifest.json`. A backup folder without a manifest is in progress (or a failed
attempt's leftovers) and is never taken for a completed backup.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from memory_operator.backup.manifest import MANIFEST_NAME, Manifest


class DestinationError(Exception):
    """The destination is missing, unreachable or refused an operation; the message says which."""


class Destination(ABC):
    """A place holding the backups of stores, one folder per store and backup."""

    @abstractmethod
    def location(self, store: str, backup: str) -> str:
        """Where a backup is, for people: `s3://bucket/prefix/store/backup/`, `pvc://claim/store/backup/`."""

    @abstractmethod
    def check(self) -> None:
        """Raise DestinationError unless the destination exists and can be used."""

    @abstractmethod
    def put(self, store: str, backup: str, file: str, stream: BinaryIO) -> None:
        """Store everything `stream` yields (read to its end) as `file` of the backup."""

    @abstractmethod
    def open(self, store: str, backup: str, file: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """A readable stream of `file` of the backup."""

    @abstractmethod
    def list_stores(self) -> list[str]:
        """Stores with at least one backup folder."""

    @abstractmethod
    def list_backups(self, store: str) -> list[str]:
        """Backup folders of a store, complete or not."""

    @abstractmethod
    def read_text(self, store: str, backup: str, file: str) -> str | None:
        """A small file of the backup, `None` when absent."""

    @abstractmethod
    def write_text(self, store: str, backup: str, file: str, text: str) -> None:
        """Write a small file atomically: readers see the old state or the whole new file."""

    @abstractmethod
    def delete_backup(self, store: str, backup: str) -> None:
        """Remove the backup's folder and everything in it (nothing happens when it does not exist)."""

    @abstractmethod
    def delete_file(self, store: str, backup: str, file: str) -> None:
        """Remove one file of the backup (nothing happens when it does not exist)."""

    def read_manifest(self, store: str, backup: str) -> Manifest | None:
        text = self.read_text(store, backup, MANIFEST_NAME)
        return None if text is None else Manifest.from_json(text)

    def write_manifest(self, manifest: Manifest) -> None:
        self.write_text(manifest.store, manifest.backup, MANIFEST_NAME, manifest.to_json())


def _safe_part(part: str) -> str:
    # Names come from Kubernetes objects and Qdrant; refuse anything that could leave the backup folder.
    if not part or part in (".", "..") or "\\" in part or part.startswith("/"):
        raise DestinationError(f"invalid path component {part!r}")
    return part


def _relative(*parts: str) -> str:
    for part in parts:
        for piece in part.split("/"):
            _safe_part(piece)
    return "/".join(parts)


class DirectoryDestination(Destination):
    """Backups in a directory, typically a mounted PersistentVolumeClaim."""

    def __init__(self, root: Path, claim: str | None = None) -> None:
        self.root = root
        self.claim = claim

    def _path(self, *parts: str) -> Path:
        return self.root / _relative(*parts)

    def location(self, store: str, backup: str) -> str:
        if self.claim:
            return f"pvc://{self.claim}/{store}/{backup}/"
        return f"{self.root.resolve().as_uri()}/{store}/{backup}/"

    def check(self) -> None:
        if not self.root.is_dir():
            raise DestinationError(f"backup directory {self.root} does not exist")
        if not os.access(self.root, os.W_OK):
            raise DestinationError(f"backup directory {self.root} is not writable")

    def put(self, store: str, backup: str, file: str, stream: BinaryIO) -> None:
        target = self._path(store, backup, file)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        try:
            with partial.open("wb") as out:
                shutil.copyfileobj(stream, out, 1024 * 1024)
                out.flush()
                os.fsync(out.fileno())
            partial.replace(target)
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise DestinationError(f"cannot write {target}: {error.strerror or error}") from error

    @contextlib.contextmanager
    def _open(self, path: Path) -> Iterator[BinaryIO]:
        try:
            stream = path.open("rb")
        except FileNotFoundError as error:
            raise DestinationError(f"{path} does not exist") from error
        with stream:
            yield stream

    def open(self, store: str, backup: str, file: str) -> contextlib.AbstractContextManager[BinaryIO]:
        return self._open(self._path(store, backup, file))

    def list_stores(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def list_backups(self, store: str) -> list[str]:
        folder = self._path(store)
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_dir())

    def read_text(self, store: str, backup: str, file: str) -> str | None:
        try:
            return self._path(store, backup, file).read_text()
        except FileNotFoundError:
            return None

    def write_text(self, store: str, backup: str, file: str, text: str) -> None:
        target = self._path(store, backup, file)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        with partial.open("w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        partial.replace(target)

    def delete_backup(self, store: str, backup: str) -> None:
        # The manifest goes first: a half-deleted backup must not look complete.
        self._path(store, backup, MANIFEST_NAME).unlink(missing_ok=True)
        shutil.rmtree(self._path(store, backup), ignore_errors=True)

    def delete_file(self, store: str, backup: str, file: str) -> None:
        try:
            self._path(store, backup, file).unlink(missing_ok=True)
        except OSError as error:
            raise DestinationError(f"cannot delete {self._path(store, backup, file)}: {error}") from error


class S3Destination(Destination):
    """Backups in an S3 (or S3-compatible) bucket, under a key prefix."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    @classmethod
    def connect(
        cls, bucket: str, prefix: str = "", endpoint: str | None = None, region: str | None = None
    ) -> S3Destination:
        """A destination with a boto3 client; credentials come from the standard AWS environment."""
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "s3",
            endpoint_url=endpoint or None,
            region_name=region or None,
            config=Config(
                retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10, read_timeout=120
            ),
        )
        return cls(client, bucket, prefix)

    def _key(self, *parts: str) -> str:
        relative = _relative(*parts)
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def _folder(self, *parts: str) -> str:
        return self._key(*parts) + "/" if parts else (f"{self.prefix}/" if self.prefix else "")

    def location(self, store: str, backup: str) -> str:
        return f"s3://{self.bucket}/{self._folder(store, backup)}"

    def _fail(self, error: Exception, doing: str) -> DestinationError:
        from botocore.exceptions import ClientError

        if isinstance(error, ClientError):
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchBucket", "404") and "bucket" in doing:
                return DestinationError(f"bucket {self.bucket} does not exist")
            if code == "NoSuchBucket":
                return DestinationError(f"{doing}: bucket {self.bucket} does not exist")
            if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                return DestinationError(f"{doing}: access denied to bucket {self.bucket} ({code})")
            message = error.response.get("Error", {}).get("Message") or code
            return DestinationError(f"{doing}: {message}")
        return DestinationError(f"{doing}: {error}")

    def check(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as error:
            raise self._fail(error, f"checking bucket {self.bucket}") from error

    def put(self, store: str, backup: str, file: str, stream: BinaryIO) -> None:
        from boto3.s3.transfer import TransferConfig
        from botocore.exceptions import BotoCoreError, ClientError

        key = self._key(store, backup, file)
        try:
            # upload_fileobj reads the stream sequentially and sends multipart parts for large files.
            self.client.upload_fileobj(
                stream, self.bucket, key, Config=TransferConfig(multipart_chunksize=16 * 1024 * 1024)
            )
        except (BotoCoreError, ClientError) as error:
            raise self._fail(error, f"uploading s3://{self.bucket}/{key}") from error

    @contextlib.contextmanager
    def _open(self, key: str) -> Iterator[BinaryIO]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except (BotoCoreError, ClientError) as error:
            raise self._fail(error, f"downloading s3://{self.bucket}/{key}") from error
        try:
            yield body
        finally:
            body.close()

    def open(self, store: str, backup: str, file: str) -> contextlib.AbstractContextManager[BinaryIO]:
        return self._open(self._key(store, backup, file))

    def _subfolders(self, folder: str) -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        names: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=folder, Delimiter="/"
            )
            for page in pages:
                for common in page.get("CommonPrefixes") or []:
                    names.append(common["Prefix"][len(folder) :].rstrip("/"))
        except (BotoCoreError, ClientError) as error:
            raise self._fail(error, f"listing s3://{self.bucket}/{folder}") from error
        return sorted(n for n in names if n)

    def list_stores(self) -> list[str]:
        return self._subfolders(self._folder())

    def list_backups(self, store: str) -> list[str]:
        return self._subfolders(self._folder(store))

    def read_text(self, store: str, backup: str, file: str) -> str | None:
        from botocore.exceptions import BotoCoreError, ClientError

        key = self._key(store, backup, file)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as error:
            if str(error.response.get("Error", {}).get("Code")) in ("NoSuchKey", "404"):
                return None
            raise self._fail(error, f"reading s3://{self.bucket}/{key}") from error
        except BotoCoreError as error:
            raise self._fail(error, f"reading s3://{self.bucket}/{key}") from error
        with contextlib.closing(body):
            return str(body.read().decode())

    def write_text(self, store: str, backup: str, file: str, text: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        key = self._key(store, backup, file)
        try:
            # A single PUT is atomic: the object appears whole or not at all.
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=text.encode(), ContentType="application/json"
            )
        except (BotoCoreError, ClientError) as error:
            raise self._fail(error, f"writing s3://{self.bucket}/{key}") from error

    def delete_backup(self, store: str, backup: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        folder = self._folder(store, backup)
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=folder)
            keys = [obj["Key"] for page in pages for obj in page.get("Contents") or []]
            # The manifest goes first: a half-deleted backup must not look complete.
            keys.sort(key=lambda k: not k.endswith("/" + MANIFEST_NAME))
            for start in range(0, len(keys), 1000):
                batch = keys[start : start + 1000]
                self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
                )
        except (BotoCoreError, ClientError) as error:
            raise self._fail(error, f"deleting s3://{self.bucket}/{folder}") from error

    def delete_file(self, store: str, backup: str, file: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        key = self._key(store, backup, file)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as error:
            raise self._fail(error, f"deleting s3://{self.bucket}/{key}") from error
