"""Export and import of memories as JSON lines, one memory per line, that round-trip exactly.

A line holds OpenMemory's logical record (`id`, `content`, `metadata`, `created_at`, `updated_at`,
`state`, `app`, `categories`) and every other key the server keeps for the memory (scope ids,
`expiration_date`, `hash`, the history and the access log), so that importing an export and
exporting again gives the same lines. Vectors are not exported: an import embeds each text with the
server's embedding model, so a file moves between stores with different models.

Files come as JSON lines, gzipped JSON lines, or OpenMemory's export zip (`memories.jsonl.gz`, else
the `memories` of `memories.json`). Everything read is bounded: the request body by the server's
limit, what it unpacks to, the number of records and each record's fields.

An import never changes a memory outside its own scope: a record whose id belongs to a memory of
another scope is imported under a new id, as OpenMemory does. Within the scope, `overwrite` (the
default) replaces the memory and `skip` keeps it.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import uuid
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator

from memory_operator.server.history import ACCESS_LOG_MAX, HISTORY_MAX
from memory_operator.server.limits import MAX_NAMES, METADATA_MAX_ITEMS, Metadata, Name, Text
from memory_operator.server.scope_id import ScopeId
from memory_operator.server.store import (
    RESERVED_KEYS,
    STORED_STATES,
    InvalidRequest,
    MemoryService,
    MemoryState,
    Owner,
    Scope,
    StoredMemory,
    caller_metadata,
    memory_from_payload,
    scope_filter,
)

JSON_LINES_TYPES = ("application/x-ndjson", "application/jsonl", "application/json-lines")
# What one import may unpack to, and how many memories it may hold.
IMPORT_MAX_BYTES = 64 * 1024 * 1024
IMPORT_MAX_RECORDS = 10_000
UPSERT_BATCH = 128
# Payload keys an export leaves out: the text is the record's `content`, and mem0 derives the rest.
DERIVED_KEYS = frozenset({"data", "text_lemmatized"})
ShortText = Annotated[str, Field(max_length=128)]
Names = Annotated[list[Name], Field(max_length=MAX_NAMES)]


class ImportMode(StrEnum):
    overwrite = "overwrite"
    skip = "skip"


class BadFile(ValueError):
    """The file is not JSON lines, gzipped JSON lines or an export zip (or is too large)."""


def _iso_time(value: str | None) -> str | None:
    if value is not None:
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value


class ImportRecord(BaseModel):
    """One line of an export; unknown keys are ignored (OpenMemory's lines have fewer)."""

    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    content: Text
    metadata: Metadata | None = None
    created_at: ShortText | None = None
    updated_at: ShortText | None = None
    state: MemoryState = MemoryState.active
    state_changed_at: ShortText | None = None
    app: Name | None = None
    categories: Names | None = None
    user_id: ScopeId | None = None
    agent_id: ScopeId | None = None
    run_id: ScopeId | None = None
    expiration_date: dt.date | None = None
    actor_id: ShortText | None = None
    role: ShortText | None = None
    attributed_to: ShortText | None = None
    history: Annotated[list[Metadata], Field(max_length=HISTORY_MAX)] | None = None
    history_truncated: StrictBool | None = None
    access_log: Annotated[list[Metadata], Field(max_length=ACCESS_LOG_MAX)] | None = None
    access_counts: Annotated[dict[Name, int], Field(max_length=METADATA_MAX_ITEMS)] | None = None

    _times = field_validator("created_at", "updated_at", "state_changed_at")(_iso_time)


@dataclass(frozen=True)
class ImportResult:
    imported: int
    skipped: int
    # Records whose id belonged to a memory of another scope: imported under a new id.
    renamed: int


# -- export --------------------------------------------------------------------------------------


def record_of(memory: StoredMemory) -> dict[str, Any]:
    """A memory as one export line (keys sorted, so that equal memories give equal lines)."""
    payload = memory.payload
    record: dict[str, Any] = {
        "id": memory.id,
        "content": memory.text,
        "metadata": caller_metadata(payload),
        "state": memory.state,
        "app": memory.app,
        "categories": memory.categories,
    }
    record.update({k: v for k, v in payload.items() if k in RESERVED_KEYS - DERIVED_KEYS and k not in record})
    return dict(sorted(record.items()))


def export_records(
    service: MemoryService,
    owner: Owner,
    app: str | None = None,
    from_date: int | None = None,
    to_date: int | None = None,
) -> list[dict[str, Any]]:
    """Every stored memory of the owner (archived and expired too), oldest first."""

    def created(memory: StoredMemory) -> float:
        try:
            return dt.datetime.fromisoformat(memory.created_at or "").timestamp()
        except ValueError:
            return 0.0

    def action() -> list[dict[str, Any]]:
        records = service.scroll(
            scope_filter(owner, STORED_STATES, app=app), with_bookkeeping=True, within=owner
        )
        memories = [memory_from_payload(r.id, r.payload or {}) for r in records]
        kept = [
            m
            for m in memories
            if (from_date is None or created(m) >= from_date) and (to_date is None or created(m) <= to_date)
        ]
        kept.sort(key=lambda m: (m.created_at or "", m.id))
        return [record_of(m) for m in kept]

    return service._call("list", action)


def json_lines(records: Sequence[Mapping[str, Any]]) -> bytes:
    return b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in records)


def export_zip(records: Sequence[Mapping[str, Any]], user_id: str | None) -> bytes:
    """OpenMemory's export zip: `memories.jsonl.gz` (these lines) and `memories.json` (its summary)."""
    categories = sorted({c for r in records for c in r.get("categories") or []})
    apps = sorted({r["app"] for r in records if r.get("app")})
    summary = {
        "user": {"id": user_id, "user_id": user_id},
        "apps": [{"id": a, "name": a, "is_active": True} for a in apps],
        "categories": [{"id": c, "name": c} for c in categories],
        "memories": [
            {
                "id": r["id"],
                "user_id": r.get("user_id"),
                "app_id": r.get("app"),
                "content": r["content"],
                "metadata": r.get("metadata") or {},
                "state": r.get("state"),
                "created_at": r.get("created_at"),
                "updated_at": r.get("updated_at"),
                "archived_at": None,
                "deleted_at": None,
                "category_ids": r.get("categories") or [],
            }
            for r in records
        ],
        "memory_categories": [
            {"memory_id": r["id"], "category_id": c} for r in records for c in r.get("categories") or []
        ],
        "status_history": [],
        "access_controls": [],
        "export_meta": {"version": "1", "generated_at": dt.datetime.now(dt.UTC).isoformat()},
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("memories.json", json.dumps(summary, indent=2, ensure_ascii=False))
        archive.writestr("memories.jsonl.gz", gzip.compress(json_lines(records), mtime=0))
    return buffer.getvalue()


# -- reading files -------------------------------------------------------------------------------


def _bounded_read(stream: io.BufferedIOBase | gzip.GzipFile | Any, what: str) -> bytes:
    data = stream.read(IMPORT_MAX_BYTES + 1)
    if len(data) > IMPORT_MAX_BYTES:
        raise BadFile(f"{what} unpacks to more than {IMPORT_MAX_BYTES} bytes")
    return bytes(data)


def _gunzip(data: bytes) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as unpacked:
            return _bounded_read(unpacked, "the gzip file")
    except (OSError, EOFError) as error:
        raise BadFile("not a valid gzip file") from error


def _member(archive: zipfile.ZipFile, name: str) -> zipfile.ZipInfo | None:
    for info in archive.infolist():
        if not info.is_dir() and info.filename.rsplit("/", 1)[-1] == name:
            return info
    return None


def _from_zip(data: bytes) -> Iterator[Any]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as error:
        raise BadFile("not a valid zip file") from error
    with archive:
        lines = _member(archive, "memories.jsonl.gz")
        summary = _member(archive, "memories.json")
        try:
            if lines is not None:
                with archive.open(lines) as member:
                    yield from _from_lines(_gunzip(_bounded_read(member, "memories.jsonl.gz")))
                return
            if summary is not None:
                with archive.open(summary) as member:
                    yield from _from_summary(_bounded_read(member, "memories.json"))
                return
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            raise BadFile("a member of the zip file cannot be read") from error
    raise BadFile("the zip file holds neither memories.jsonl.gz nor memories.json")


def _from_summary(data: bytes) -> Iterator[Any]:
    """The memories of OpenMemory's `memories.json`, as logical records (its ids of users and apps
    are its own database's, so they are not taken as scope ids)."""
    try:
        summary = json.loads(data)
    except (ValueError, RecursionError) as error:
        raise BadFile("memories.json is not JSON") from error
    if not isinstance(summary, dict) or not isinstance(summary.get("memories"), list):
        raise BadFile("memories.json has no list of memories")
    names = {c.get("id"): c.get("name") for c in summary.get("categories") or [] if isinstance(c, dict)}
    apps = {a.get("id"): a.get("name") for a in summary.get("apps") or [] if isinstance(a, dict)}
    for memory in summary["memories"]:
        if not isinstance(memory, dict):
            yield memory
            continue
        record = {k: v for k, v in memory.items() if k not in ("user_id", "app_id", "category_ids")}
        record["app"] = apps.get(memory.get("app_id"))
        record["categories"] = [names.get(c, c) for c in memory.get("category_ids") or []]
        yield record


def _from_lines(data: bytes) -> Iterator[Any]:
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except (ValueError, RecursionError) as error:
            raise BadFile(f"line {number} is not JSON") from error


def read_records(data: bytes) -> list[ImportRecord]:
    """The records of an export file: JSON lines, gzipped JSON lines or an export zip."""
    if not data.strip():
        raise BadFile("the body holds no file")
    if data[:4] == b"PK\x03\x04":
        raw = _from_zip(data)
    elif data[:2] == b"\x1f\x8b":
        raw = _from_lines(_gunzip(data))
    else:
        raw = _from_lines(data)
    records: list[ImportRecord] = []
    for number, item in enumerate(raw, start=1):
        if number > IMPORT_MAX_RECORDS:
            raise BadFile(f"more than {IMPORT_MAX_RECORDS} memories in one import")
        if isinstance(item, dict) and item.get("state") == MemoryState.deleted.value:
            continue  # OpenMemory exports deleted memories too; they stay deleted
        try:
            records.append(ImportRecord.model_validate(item))
        except ValidationError as error:
            raise RecordInvalid(number, error) from None
    return records


class RecordInvalid(ValueError):
    """A record of the file is not a memory; names the record and its fields, never their values."""

    def __init__(self, number: int, error: ValidationError) -> None:
        super().__init__(f"record {number} is invalid")
        self.number = number
        self.errors = [
            {"loc": ["body", f"record {number}", *e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in error.errors(include_input=False)
        ]


# -- import --------------------------------------------------------------------------------------


def target_scope(record: ImportRecord, user_id: str | None) -> Scope:
    """The scope a record is imported into: the given user (as OpenMemory imports), with the
    record's own agent and run ids; else the record's own scope ids."""
    scope = {"user_id": user_id or record.user_id, "agent_id": record.agent_id, "run_id": record.run_id}
    if not any(scope.values()):
        raise InvalidRequest("user_id is required: the file's memories have no scope ids", loc=("user_id",))
    return Scope(**scope)


def payload_of(record: ImportRecord, scope: Scope) -> dict[str, Any]:
    """The Qdrant payload of an imported memory, as mem0 and the server write it."""
    from mem0.utils.lemmatization import lemmatize_for_bm25

    now = dt.datetime.now(dt.UTC).isoformat()
    fields = record.model_dump(
        exclude={"id", "content", "metadata", "user_id", "agent_id", "run_id"}, exclude_none=True, mode="json"
    )
    payload: dict[str, Any] = {
        **caller_metadata(record.metadata),
        **fields,
        **scope.as_filters(),
        "data": record.content,
        "hash": hashlib.md5(record.content.encode()).hexdigest(),
        "text_lemmatized": lemmatize_for_bm25(record.content),
        "categories": list(record.categories or []),
    }
    payload.setdefault("created_at", now)
    payload.setdefault("updated_at", payload["created_at"])
    return payload


def import_records(
    service: MemoryService, records: Sequence[ImportRecord], scopes: Sequence[Scope], mode: ImportMode
) -> ImportResult:
    """Store each record in its scope (`scopes[i]` for `records[i]`), embedding its text."""

    def action() -> ImportResult:
        existing = service._points([str(r.id) for r in records]) if records else {}
        points: list[tuple[str, list[float], dict[str, Any]]] = []
        skipped = renamed = 0
        taken: set[str] = set()
        for record, scope in zip(records, scopes, strict=True):
            point_id = str(record.id)
            current = existing.get(point_id)
            if point_id in taken or (current is not None and not scope.contains(current)):
                point_id = str(uuid.uuid4())
                renamed += 1
            elif current is not None and mode == ImportMode.skip:
                skipped += 1
                continue
            taken.add(point_id)
            vector = service.memory.embedding_model.embed(record.content, "add")
            points.append((point_id, vector, payload_of(record, scope)))
        # mem0's store writes the point as mem0 would (its keyword index included).
        for start in range(0, len(points), UPSERT_BATCH):
            batch = points[start : start + UPSERT_BATCH]
            service.memory.vector_store.insert(
                vectors=[p[1] for p in batch], payloads=[p[2] for p in batch], ids=[p[0] for p in batch]
            )
        return ImportResult(imported=len(points), skipped=skipped, renamed=renamed)

    return service._call("add", action)
