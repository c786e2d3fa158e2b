"""OpenMemory's REST API (`/api/v1`): memories, categories, stats, apps, config and backup.

Shapes follow OpenMemory's last API and what its UI reads. Where OpenMemory takes no user (a
memory or an app by id, the apps list), the request acts on everything its key reaches.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response

from memory_operator.server import apps as app_state
from memory_operator.server import models as m
from memory_operator.server import transfer
from memory_operator.server.deps import (
    MEMORY_ID,
    READ,
    READ_BODY,
    READ_ID,
    WRITE_BODY,
    WRITE_IDS,
    AppName,
    OptionalUserId,
    PageNumber,
    PageSize,
    ReadCaller,
    ServiceDep,
    UserId,
    WriteCaller,
    validation_errors,
)
from memory_operator.server.settings import ServerSettings
from memory_operator.server.store import (
    LISTED_STATES,
    InvalidRequest,
    MemoryState,
)
from memory_operator.server.store import Scope as MemoryScope

MEMORIES = "/api/v1/memories"
APPS = "/api/v1/apps"
# OpenMemory pages related memories five at a time, whatever the size asked for.
RELATED_PAGE_SIZE = 5
AppSort = Annotated[str, Query(pattern="^(name|memories|memories_accessed)$")]
Direction = Annotated[str, Query(pattern="^(asc|desc)$")]


def _ids(memory_ids: list[UUID]) -> list[str]:
    return [str(i) for i in memory_ids]


def _user(user_id: str | None) -> MemoryScope | None:
    return MemoryScope(user_id=user_id) if user_id else None


def memory_routes(router: FastAPI) -> None:
    @router.get(f"{MEMORIES}/", tags=["memories"], responses=READ)
    def list_memories(
        service: ServiceDep,
        caller: ReadCaller,
        user_id: UserId,
        page: PageNumber = 1,
        size: PageSize = 50,
        app_id: AppName = None,
        categories: Annotated[str | None, Query(description="comma-separated category names")] = None,
        state: MemoryState | None = None,
        search_query: Annotated[str | None, Query(max_length=1000)] = None,
        from_date: Annotated[int | None, Query(ge=0)] = None,
        to_date: Annotated[int | None, Query(ge=0)] = None,
        sort_column: m.SortColumn | None = None,
        sort_direction: m.SortDirection | None = None,
    ) -> m.MemoryPage:
        """The user's memories (active and paused unless `state` is given), paginated."""
        names = [c.strip() for c in categories.split(",") if c.strip()] if categories else None
        found = service.list_memories(
            caller.within(MemoryScope(user_id=user_id)),
            states=[state] if state else LISTED_STATES,
            app=app_id,
            categories=names,
            text=search_query,
        )
        return m.page_of(m.narrowed(found, from_date, to_date, sort_column, sort_direction), page, size)

    @router.post(f"{MEMORIES}/", tags=["memories"], responses=WRITE_BODY)
    def create_memory(
        service: ServiceDep, caller: WriteCaller, body: m.CreateMemoryRequest
    ) -> m.MemoryResponse | m.Mem0Results:
        """Store a memory; returns it (or, when a language model extracted several or none, all of them).

        `infer` (default true) has a configured language model extract facts, as OpenMemory does;
        a paused app gets 403.
        """
        scope = MemoryScope(user_id=body.user_id, agent_id=body.agent_id, run_id=body.run_id)
        caller.within(scope)
        added = service.add(
            scope,
            body.text,
            metadata=body.metadata,
            categories=body.categories,
            app=body.app or "openmemory",
            infer=body.infer is not False,
            expiration_date=body.expiration_date,
        )
        if len(added) == 1:
            return m.openmemory_view(added[0])
        return m.Mem0Results(results=[m.mem0_view(a) for a in added])

    @router.post(f"{MEMORIES}/filter", tags=["memories"], responses=READ_BODY)
    def filter_memories(
        service: ServiceDep, caller: ReadCaller, body: m.FilterMemoriesRequest
    ) -> m.MemoryPage:
        """OpenMemory's filtered listing: apps, categories, text, dates, sorting, archived or not."""
        states = [*LISTED_STATES, MemoryState.archived] if body.show_archived else LISTED_STATES
        found = service.list_memories(
            caller.within(MemoryScope(user_id=body.user_id)),
            states=states,
            categories=body.category_ids,
            text=body.search_query,
        )
        if body.app_ids:
            found = [x for x in found if x.app in body.app_ids]
        ordered = m.narrowed(found, body.from_date, body.to_date, body.sort_column, body.sort_direction)
        return m.page_of(ordered, body.page or 1, body.size or 10)

    @router.get(f"{MEMORIES}/categories", tags=["memories"], responses=READ)
    def list_categories(service: ServiceDep, caller: ReadCaller, user_id: UserId) -> m.CategoriesResponse:
        """Configured categories and those the user's memories use, with counts (a category's id is
        its name)."""
        scope = MemoryScope(user_id=user_id)
        caller.within(scope)
        found = service.categories(scope)
        items = [m.CategoryResponse(id=n, name=n, description=d, count=c) for n, d, c in found]
        return m.CategoriesResponse(categories=items, total=len(items))

    @router.post(f"{MEMORIES}/actions/archive", tags=["memories"], responses=WRITE_IDS)
    def archive_memories(
        service: ServiceDep, caller: WriteCaller, body: m.ArchiveBody, user_id: OptionalUserId = None
    ) -> m.MessageResponse:
        """Archive memories: hidden from listings and search, kept in the store.

        The body is OpenMemory's bare list of ids, or `{memory_ids, user_id}`. The user comes from
        the body or the query; without one, the memories may be any the key reaches.
        """
        if isinstance(body, m.ArchiveMemoriesRequest):
            ids, owner_id = body.memory_ids, body.user_id or user_id
        else:
            ids, owner_id = body, user_id
        count = service.set_state(caller.within(_user(owner_id)), _ids(ids), MemoryState.archived)
        return m.MessageResponse(message=f"Successfully archived {count} memories")

    @router.post(f"{MEMORIES}/actions/pause", tags=["memories"], responses=WRITE_IDS)
    def pause_memories(
        service: ServiceDep, caller: WriteCaller, body: m.PauseMemoriesRequest
    ) -> m.MessageResponse:
        """Pause (or set another state on) memories by ids, app, categories, or all of the user's.

        One of `memory_ids`, `app_id`, `category_ids` or `global_pause` is required.
        """
        scope = MemoryScope(user_id=body.user_id)
        caller.within(scope)
        state = body.state or MemoryState.paused
        if body.memory_ids:
            count = service.set_state(scope, _ids(body.memory_ids), state)
        elif body.global_pause or body.app_id or body.category_ids:
            count = service.set_state_where(scope, state, app=body.app_id, categories=body.category_ids)
        else:
            raise InvalidRequest("give memory_ids, app_id, category_ids or global_pause")
        return m.MessageResponse(message=f"Successfully set {count} memories to {state.value}")

    @router.delete(f"{MEMORIES}/", tags=["memories"], responses=WRITE_IDS)
    def delete_memories(
        service: ServiceDep, caller: WriteCaller, body: m.DeleteMemoriesRequest
    ) -> m.MessageResponse:
        """Delete memories of the user, all or none."""
        count = service.delete(caller.within(MemoryScope(user_id=body.user_id)), _ids(body.memory_ids))
        return m.MessageResponse(message=f"Successfully deleted {count} memories")

    @router.get(f"{MEMORIES}/{MEMORY_ID}", tags=["memories"], responses=READ_ID)
    def get_memory(
        service: ServiceDep, caller: ReadCaller, memory_id: UUID, user_id: OptionalUserId = None
    ) -> m.MemoryDetail:
        """One memory (its text as both `text`, OpenMemory's name here, and `content`)."""
        return m.openmemory_detail(service.get(caller.within(_user(user_id)), str(memory_id)))

    @router.put(f"{MEMORIES}/{MEMORY_ID}", tags=["memories"], responses=WRITE_IDS)
    def update_memory(
        service: ServiceDep, caller: WriteCaller, memory_id: UUID, body: m.UpdateMemoryRequest
    ) -> m.MemoryResponse:
        """Change a memory's text (re-embedded, kept in its history) and merge metadata."""
        owner = caller.within(_user(body.user_id))
        updated = service.update(owner, str(memory_id), text=body.memory_content, metadata=body.metadata)
        return m.openmemory_view(updated)

    @router.get(f"{MEMORIES}/{MEMORY_ID}/access-log", tags=["memories"], responses=READ_ID)
    def access_log(
        service: ServiceDep,
        caller: ReadCaller,
        memory_id: UUID,
        page: PageNumber = 1,
        page_size: PageSize = 10,
        user_id: OptionalUserId = None,
    ) -> m.AccessLogResponse:
        """Which apps (MCP clients) searched or listed the memory, newest first (the latest 20 kept)."""
        entries = app_state.access_entries(service, caller.within(_user(user_id)), str(memory_id))
        return m.access_entries_page(str(memory_id), entries, page, page_size)

    @router.get(f"{MEMORIES}/{MEMORY_ID}/related", tags=["memories"], responses=READ_ID)
    def related_memories(
        service: ServiceDep,
        caller: ReadCaller,
        memory_id: UUID,
        user_id: OptionalUserId = None,
        page: PageNumber = 1,
        size: PageSize = RELATED_PAGE_SIZE,
    ) -> m.MemoryPage:
        """Memories of the same owner sharing a category with this one, those sharing the most first;
        five a page, as OpenMemory pages them."""
        found = service.related(caller.within(_user(user_id)), str(memory_id))
        return m.page_of(found, page, RELATED_PAGE_SIZE)

    @router.get("/api/v1/stats", tags=["stats"], responses=READ)
    def stats(service: ServiceDep, caller: ReadCaller, user_id: UserId) -> m.StatsResponse:
        """The user's number of memories (archived ones included) and apps."""
        scope = MemoryScope(user_id=user_id)
        caller.within(scope)
        total, counts = service.stats(scope)
        paused = {a.name for a in app_state.list_apps(service, scope) if not a.is_active}
        named = {name: count for name, count in counts.items() if name != "default"}
        return m.StatsResponse(
            total_memories=total,
            total_apps=len(named),
            apps=[
                m.AppStats(id=name, name=name, is_active=name not in paused, total_memories=count)
                for name, count in named.items()
            ],
        )


def _app_page(items: list[Any], page: int, page_size: int) -> list[Any]:
    start = (page - 1) * page_size
    return items[start : start + page_size]


def app_routes(router: FastAPI) -> None:
    @router.get(f"{APPS}/", tags=["apps"], responses=READ)
    def list_apps(
        service: ServiceDep,
        caller: ReadCaller,
        name: Annotated[str | None, Query(max_length=253, description="part of the name")] = None,
        is_active: bool | None = None,
        sort_by: AppSort = "name",
        sort_direction: Direction = "asc",
        page: PageNumber = 1,
        page_size: PageSize = 10,
        user_id: OptionalUserId = None,
    ) -> m.AppListResponse:
        """The apps that added or accessed memories (an app's id is its name), with their counts."""
        found = app_state.list_apps(service, caller.within(_user(user_id)))
        if name:
            found = [a for a in found if name.casefold() in a.name.casefold()]
        if is_active is not None:
            found = [a for a in found if a.is_active == is_active]
        keys: dict[str, Any] = {
            "name": lambda a: a.name.casefold(),
            "memories": lambda a: a.total_memories_created,
            "memories_accessed": lambda a: a.total_memories_accessed,
        }
        found.sort(key=keys[sort_by], reverse=sort_direction == "desc")
        items = [
            m.AppItem(
                id=a.name,
                name=a.name,
                is_active=a.is_active,
                total_memories_created=a.total_memories_created,
                total_memories_accessed=a.total_memories_accessed,
            )
            for a in _app_page(found, page, page_size)
        ]
        return m.AppListResponse(total=len(found), page=page, page_size=page_size, apps=items)

    @router.get(f"{APPS}/{{app_id}}", tags=["apps"], responses=READ_ID)
    def app_details(
        service: ServiceDep, caller: ReadCaller, app_id: str, user_id: OptionalUserId = None
    ) -> m.AppDetailResponse:
        """Whether the app is active, and its counts of memories created and accessed."""
        found = app_state.app_summary(service, caller.within(_user(user_id)), app_id)
        return m.AppDetailResponse(
            is_active=found.is_active,
            total_memories_created=found.total_memories_created,
            total_memories_accessed=found.total_memories_accessed,
            first_accessed=found.first_accessed,
            last_accessed=found.last_accessed,
        )

    @router.put(f"{APPS}/{{app_id}}", tags=["apps"], responses=WRITE_IDS)
    def update_app(
        service: ServiceDep, caller: WriteCaller, app_id: str, is_active: bool, user_id: OptionalUserId = None
    ) -> m.StatusResponse:
        """Pause (`is_active=false`) or resume the app: a paused app may not add memories.

        For the user given, or for every user the key reaches that has memories of the app."""
        app_state.set_app_active(service, caller.within(_user(user_id)), app_id, is_active, user_id)
        return m.StatusResponse(status="success", message="Updated app details successfully")

    @router.get(f"{APPS}/{{app_id}}/memories", tags=["apps"], responses=READ_ID)
    def app_memories(
        service: ServiceDep,
        caller: ReadCaller,
        app_id: str,
        page: PageNumber = 1,
        page_size: PageSize = 10,
        user_id: OptionalUserId = None,
    ) -> m.AppMemoriesResponse:
        """The memories the app created (archived ones too), newest first."""
        found = app_state.app_memories(service, caller.within(_user(user_id)), app_id)
        items = [m.app_memory_view(x) for x in _app_page(found, page, page_size)]
        return m.AppMemoriesResponse(total=len(found), page=page, page_size=page_size, memories=items)

    @router.get(f"{APPS}/{{app_id}}/accessed", tags=["apps"], responses=READ)
    def app_accessed(
        service: ServiceDep,
        caller: ReadCaller,
        app_id: str,
        page: PageNumber = 1,
        page_size: PageSize = 10,
        user_id: OptionalUserId = None,
    ) -> m.AppAccessedResponse:
        """The memories the app searched or listed, the most accessed first."""
        found = app_state.app_accessed(service, caller.within(_user(user_id)), app_id)
        items = [
            m.AccessedMemory(memory=m.app_memory_view(x), access_count=n)
            for x, n in _app_page(found, page, page_size)
        ]
        return m.AppAccessedResponse(total=len(found), page=page, page_size=page_size, memories=items)


def config_routes(router: FastAPI, settings: ServerSettings | None) -> None:
    @router.get("/api/v1/config", tags=["config"], responses=READ)
    def configuration(request: Request, caller: ReadCaller) -> m.ConfigResponse:
        """The models and instructions the server runs with, as OpenMemory's settings page reads them
        (never a key). Read-only: the MemoryStore (or the server's flags) configures the server."""
        service = request.app.state.slot.service
        instructions = service.config.custom_instructions if service is not None else None
        return config_view(settings, instructions)


def config_view(settings: ServerSettings | None, instructions: str | None) -> m.ConfigResponse:
    def model(provider: Any) -> m.ModelView | None:
        if provider is None or not provider.provider:
            return None
        config = {"model": provider.model} if provider.model else {}
        return m.ModelView(provider=provider.provider, config=config)

    llm = model(settings.llm) if settings else None
    embedder = model(settings.embedder) if settings else None
    local = m.ModelView(provider="huggingface", config={"model": "all-MiniLM-L6-v2"})
    return m.ConfigResponse(
        openmemory=m.OpenMemoryConfigView(custom_instructions=instructions),
        mem0=m.Mem0ConfigView(llm=llm, embedder=embedder or local),
    )


IMPORT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "An export: JSON lines, gzipped JSON lines, or OpenMemory's zip.",
                        },
                        "user_id": {"type": "string", "description": "Import into this user."},
                    },
                }
            },
            "application/x-ndjson": {"schema": {"type": "string", "description": "JSON lines."}},
        },
    }
}


def backup_routes(router: FastAPI, max_body_bytes: int) -> None:
    @router.post(
        "/api/v1/backup/export",
        tags=["backup"],
        responses={
            **READ_BODY,
            200: {
                "description": "OpenMemory's zip by default; JSON lines when asked for with `Accept`.",
                "content": {
                    "application/zip": {"schema": {"type": "string", "format": "binary"}},
                    "application/x-ndjson": {"schema": {"type": "string"}},
                },
            },
        },
        response_class=Response,
    )
    def export_memories(
        service: ServiceDep, caller: ReadCaller, request: Request, body: m.ExportRequest
    ) -> Response:
        """Export memories, one JSON object a line: OpenMemory's zip (`memories.jsonl.gz` beside
        `memories.json`) unless `Accept` asks for `application/x-ndjson`. Archived and expired
        memories are exported too."""
        records = transfer.export_records(
            service, caller.within(_user(body.user_id)), body.app_id, body.from_date, body.to_date
        )
        accept = request.headers.get("accept", "")
        if any(kind in accept for kind in transfer.JSON_LINES_TYPES):
            return Response(transfer.json_lines(records), media_type="application/x-ndjson")
        name = f"memories_export_{body.user_id or 'all'}.zip"
        return Response(
            transfer.export_zip(records, body.user_id),
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    @router.post("/api/v1/backup/import", tags=["backup"], responses=WRITE_IDS, openapi_extra=IMPORT_BODY)
    async def import_memories(
        service: ServiceDep,
        caller: WriteCaller,
        request: Request,
        mode: transfer.ImportMode = transfer.ImportMode.overwrite,
        user_id: OptionalUserId = None,
    ) -> m.ImportResponse:
        """Import an export: OpenMemory's multipart upload (`file`, `user_id`) or JSON lines as the body.

        Memories go to `user_id` (form or query) when given, else to their own scope ids. A memory
        whose id belongs to another scope is imported under a new id; `mode=skip` keeps the
        owner's memories that exist, `overwrite` (default) replaces them.
        """
        data, form_user = await _upload(request, max_body_bytes)
        target = form_user or user_id
        try:
            records = transfer.read_records(data)
        except transfer.RecordInvalid as error:
            return JSONResponse({"detail": validation_errors(error.errors)}, status_code=422)  # type: ignore[return-value]
        except transfer.BadFile as error:
            return JSONResponse({"detail": str(error)}, status_code=400)  # type: ignore[return-value]
        scopes = [transfer.target_scope(r, target) for r in records]
        for scope in scopes:
            caller.within(scope)
        result = await _in_thread(lambda: transfer.import_records(service, records, scopes, mode))
        return m.ImportResponse(
            message=f'Import completed into user "{target}"' if target else "Import completed",
            imported=result.imported,
            skipped=result.skipped,
            renamed=result.renamed,
        )


async def _in_thread(action: Any) -> Any:
    import anyio

    return await anyio.to_thread.run_sync(action)


async def _upload(request: Request, max_body_bytes: int) -> tuple[bytes, str | None]:
    """The file of an import request and the form's user, if any."""
    kind = request.headers.get("content-type", "")
    if not kind.startswith("multipart/form-data"):
        return await request.body(), None
    from starlette.datastructures import UploadFile

    try:
        form = await request.form(max_files=1, max_fields=8, max_part_size=max_body_bytes)
    except Exception as error:  # multipart errors: a malformed upload
        raise InvalidUpload("not a readable multipart form") from error
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InvalidUpload("the form has no file")
    user = form.get("user_id")
    if user is not None and not isinstance(user, str):
        raise InvalidUpload("user_id must be a form field")
    if user is not None:
        MemoryScope(user_id=user)  # the scope id grammar, with its field named
    return await upload.read(), user or None


class InvalidUpload(InvalidRequest):
    def __init__(self, message: str) -> None:
        super().__init__(message, loc=("body",))


def add_routes(app: FastAPI, settings: ServerSettings | None, max_body_bytes: int) -> None:
    """OpenMemory's routes, on the app itself (its 405 answers name every method of a path)."""
    memory_routes(app)
    app_routes(app)
    config_routes(app, settings)
    backup_routes(app, max_body_bytes)
