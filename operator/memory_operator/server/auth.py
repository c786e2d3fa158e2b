"""API keys: a read-write key and an optional read-only key, compared in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum


class Access(IntEnum):
    read = 1
    write = 2


@dataclass(frozen=True)
class ApiKeys:
    api_key: str
    read_only_api_key: str | None = None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def single_authorization(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The one Authorization header of a request's raw (ASGI) headers; None when absent or repeated.

    Servers and proxies disagree on which of two headers counts (the first, the last, both joined),
    so a request with more than one is refused rather than read one way here and another there.
    """
    values = [value for name, value in headers if name.lower() == b"authorization"]
    return values[0].decode("latin-1") if len(values) == 1 else None


def access_of(authorization: str | None, keys: ApiKeys) -> Access | None:
    """What a request's Authorization header grants, or None.

    Both keys are always compared, so the time taken does not tell which one (if any) was close.
    """
    token = (bearer_token(authorization) or "").encode()
    read_write = hmac.compare_digest(token, keys.api_key.encode())
    read_only = keys.read_only_api_key is not None and hmac.compare_digest(
        token, keys.read_only_api_key.encode()
    )
    if not token:
        return None
    if read_write:
        return Access.write
    return Access.read if read_only else None
