"""Readable streams that hash and count the bytes passing through them."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Iterator
from typing import BinaryIO

CHUNK_SIZE = 1024 * 1024


class ChecksumMismatch(Exception):
    """A file's bytes do not match the SHA-256 (or size) recorded for it."""


class _Hashing(io.RawIOBase):
    def __init__(self) -> None:
        super().__init__()
        self._hash = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def _count(self, data: bytes | memoryview) -> None:
        self._hash.update(data)
        self.size += len(data)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def verify(self, what: str, sha256: str | None, size: int | None) -> None:
        """Raise ChecksumMismatch unless what was read has the expected digest and size (when known)."""
        if size is not None and size != self.size:
            raise ChecksumMismatch(f"{what}: size mismatch, expected {size} bytes, got {self.size}")
        # Qdrant compares checksums without regard to case; so does this.
        if sha256 and sha256.strip().lower() != self.sha256:
            raise ChecksumMismatch(f"{what}: checksum mismatch, expected sha256 {sha256}, got {self.sha256}")


class HashingReader(_Hashing):
    """File-like view of an iterable of byte chunks, computing SHA-256 and size of what was read."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        super().__init__()
        self._chunks: Iterator[bytes] = iter(chunks)
        self._pending = memoryview(b"")

    @classmethod
    def over(cls, stream: BinaryIO, chunk_size: int = CHUNK_SIZE) -> HashingReader:
        return cls(iter(lambda: stream.read(chunk_size), b""))

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        count = min(len(buffer), len(self._pending))
        piece, self._pending = self._pending[:count], self._pending[count:]
        buffer[:count] = piece
        self._count(piece)
        return count


class HashingUpload(_Hashing):
    """A stream read once, to its end, by an uploader: hashes and counts what it hands out.

    `name` is the file name the upload carries (a multipart part's file name), which Qdrant keeps for
    the file it stores.
    """

    def __init__(self, source: BinaryIO, name: str) -> None:
        super().__init__()
        self._source = source
        self.name = name

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._source.read(len(buffer))
        count = len(data)
        buffer[:count] = data
        self._count(data)
        return count
