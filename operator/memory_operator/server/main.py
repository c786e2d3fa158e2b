"""`memory-operator server`: the memory API (OpenMemory REST, mem0 REST, MCP) on mem0 and Qdrant.

In a cluster the operator sets the environment (Qdrant URL and key, collection, API keys, models).
`--embedded` runs everything on this machine instead: Qdrant in local mode under the data directory,
the bundled all-MiniLM-L6-v2 embedder, a generated API key kept beside the data.
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.config
import os
import re
import secrets
from pathlib import Path
from typing import Any

from memory_operator import env
from memory_operator.server import serving
from memory_operator.server.settings import (
    DEFAULT_CLIENTS_RELOAD_SECONDS,
    DEFAULT_COLLECTION,
    DEFAULT_MAX_BODY_BYTES,
    ModelSettings,
    ServerSettings,
)

DEFAULT_DATA_DIR = Path("data")
# A browser origin: scheme, host and optional port, no path.
ORIGIN = re.compile(r"https?://[^/\s?#]+")
KEY_FILE_NAME = "api-key"
# Environment variables of the server that only it reads (the operator's are in `env`).
MAX_BODY_BYTES_ENV = "MEMORY_SERVER_MAX_BODY_BYTES"
DATA_DIR_ENV = "MEMORY_DATA_DIR"
LOG_FORMAT_ENV = "MEMORY_LOG_FORMAT"
CLIENTS_RELOAD_ENV = "MEMORY_CLIENTS_RELOAD_SECONDS"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Every option also reads the environment variable named in its help; prefer the environment "
        "for keys, which would otherwise show in the process list."
    )
    run = parser.add_argument_group("serving")
    run.add_argument(
        "--embedded",
        action="store_true",
        help="run Qdrant (local mode), the local embedder and a generated key here",
    )
    run.add_argument(
        "--data-dir",
        type=Path,
        default=Path(env.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR),
        help=f"embedded mode's directory for Qdrant's files and the API key (default ./data; {DATA_DIR_ENV})",
    )
    run.add_argument(
        "--host", default=None, help="address to bind (default 127.0.0.1 embedded, else 0.0.0.0)"
    )
    run.add_argument("--port", type=int, default=env.SERVER_PORT, help=f"port (default {env.SERVER_PORT})")
    run.add_argument(
        "--max-body-bytes",
        type=int,
        default=int(env.get(MAX_BODY_BYTES_ENV) or DEFAULT_MAX_BODY_BYTES),
        help=f"largest request body accepted; larger gets 413 (default 1 MiB; {MAX_BODY_BYTES_ENV})",
    )
    run.add_argument(
        "--log-format",
        choices=["json", "plain"],
        default=env.get(LOG_FORMAT_ENV) or "json",
        help=f"JSON lines or plain text logs (default json; {LOG_FORMAT_ENV})",
    )
    run.add_argument(
        "--cors-allowed-origins",
        default=env.get(env.CORS_ALLOWED_ORIGINS) or "",
        help=(
            "comma-separated browser origins allowed to call the API, e.g. http://localhost:3000 "
            f"for OpenMemory's UI (default none: CORS off; {env.CORS_ALLOWED_ORIGINS})"
        ),
    )
    run.add_argument(
        "--clients-file",
        type=Path,
        default=env.get(env.CLIENTS_FILE),
        help=(
            "JSON or YAML with per-client keys (or their SHA-256), access, scopes and quotas, reloaded "
            f"when it changes; see docs/clients.md ({env.CLIENTS_FILE})"
        ),
    )
    run.add_argument(
        "--clients-reload-seconds",
        type=float,
        default=float(env.get(CLIENTS_RELOAD_ENV) or DEFAULT_CLIENTS_RELOAD_SECONDS),
        help=f"how often the clients file is checked for changes (default 2; {CLIENTS_RELOAD_ENV})",
    )
    run.add_argument(
        "--config-file",
        type=Path,
        default=env.get(env.SERVER_CONFIG_FILE),
        help=f"YAML with categories, custom instructions, default expirations ({env.SERVER_CONFIG_FILE})",
    )
    serving.add_arguments(run)

    store = parser.add_argument_group("Qdrant and keys")
    store.add_argument("--qdrant-url", default=env.get(env.QDRANT_URL), help=f"Qdrant URL ({env.QDRANT_URL})")
    store.add_argument(
        "--qdrant-api-key", default=env.get(env.QDRANT_API_KEY), help=f"Qdrant API key ({env.QDRANT_API_KEY})"
    )
    store.add_argument(
        "--qdrant-ca-file",
        type=Path,
        default=env.get(env.TLS_CA_FILE),
        help=f"CA bundle that verifies an https Qdrant (default: the system's; {env.TLS_CA_FILE})",
    )
    store.add_argument(
        "--collection",
        default=env.get(env.COLLECTION) or DEFAULT_COLLECTION,
        help=f"collection of the memories ({env.COLLECTION})",
    )
    store.add_argument(
        "--api-key", default=env.get(env.API_KEY), help=f"read-write API key of clients ({env.API_KEY})"
    )
    store.add_argument(
        "--read-only-api-key",
        default=env.get(env.READ_ONLY_API_KEY),
        help=f"read-only API key ({env.READ_ONLY_API_KEY})",
    )

    models = parser.add_argument_group("models (unset: local all-MiniLM-L6-v2 embedder, no LLM)")
    models.add_argument(
        "--embedder-provider",
        default=env.get(env.EMBEDDER_PROVIDER),
        help=f"mem0 embedder provider ({env.EMBEDDER_PROVIDER})",
    )
    models.add_argument(
        "--embedder-model", default=env.get(env.EMBEDDER_MODEL), help=f"({env.EMBEDDER_MODEL})"
    )
    models.add_argument(
        "--embedder-dims",
        type=int,
        default=int(env.get(env.EMBEDDER_DIMS) or 0) or None,
        help=f"vector size ({env.EMBEDDER_DIMS})",
    )
    models.add_argument(
        "--embedder-api-key", default=env.get(env.EMBEDDER_API_KEY), help=f"({env.EMBEDDER_API_KEY})"
    )
    models.add_argument(
        "--embedder-base-url", default=env.get(env.EMBEDDER_BASE_URL), help=f"({env.EMBEDDER_BASE_URL})"
    )
    models.add_argument(
        "--llm-provider",
        default=env.get(env.LLM_PROVIDER),
        help=f"mem0 LLM provider; enables infer ({env.LLM_PROVIDER})",
    )
    models.add_argument("--llm-model", default=env.get(env.LLM_MODEL), help=f"({env.LLM_MODEL})")
    models.add_argument("--llm-api-key", default=env.get(env.LLM_API_KEY), help=f"({env.LLM_API_KEY})")
    models.add_argument("--llm-base-url", default=env.get(env.LLM_BASE_URL), help=f"({env.LLM_BASE_URL})")


class NoQueryStrings(logging.Filter):
    """Drops the query string from uvicorn's access log lines: a client may put a credential there.

    uvicorn logs `client, method, path with query, HTTP version, status` as the record's arguments.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup_logging(log_format: str) -> dict[str, Any]:
    """Configure the root logger and return uvicorn's logging config, both in the chosen format."""
    formatter: dict[str, Any] = (
        {"()": JsonFormatter}
        if log_format == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    )
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "filters": {"no_query_strings": {"()": NoQueryStrings}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"}
        },
        "root": {"handlers": ["stderr"], "level": "INFO"},
        "loggers": {
            "uvicorn": {"level": "INFO"},
            "uvicorn.access": {"level": "INFO", "filters": ["no_query_strings"]},
            "httpx": {"level": "WARNING"},
            "mcp": {"level": "WARNING"},
        },
    }
    logging.config.dictConfig(config)
    return config


def keep_data_private(data_dir: Path) -> None:
    """Make everything the embedded server writes owner-only: the directory 0700, new files 0600.

    Qdrant's files, mem0's and the key file are all created by this process, so its umask is what
    keeps them private; a directory that already exists is narrowed too.
    """
    os.umask(0o077)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)


def load_or_create_key(path: Path) -> str:
    """The key kept in `path`; a new random one (written with mode 0600) when there is none."""
    if path.exists():
        key = path.read_text().strip()
        if key:
            return key
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    os.chmod(path, 0o600)
    return key


def _model(provider: str | None, **fields: Any) -> ModelSettings | None:
    return ModelSettings(provider=provider, **fields) if provider else None


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    """The server's settings; embedded mode fills in the local Qdrant path and the key file."""
    data_dir: Path = args.data_dir.expanduser().resolve()
    embedded = bool(args.embedded)
    if embedded and args.qdrant_url:
        raise SystemExit("--embedded runs Qdrant locally: leave --qdrant-url unset")
    api_key = args.api_key or (load_or_create_key(data_dir / KEY_FILE_NAME) if embedded else None)
    if not api_key:
        raise SystemExit(f"an API key is required: set {env.API_KEY} (or --api-key), or use --embedded")
    if not embedded and not args.qdrant_url:
        raise SystemExit(
            f"a Qdrant URL is required: set {env.QDRANT_URL} (or --qdrant-url), or use --embedded"
        )
    return ServerSettings(
        api_key=api_key,
        read_only_api_key=args.read_only_api_key,
        qdrant_url=None if embedded else args.qdrant_url,
        qdrant_api_key=args.qdrant_api_key,
        qdrant_path=data_dir / "qdrant" if embedded else None,
        collection=args.collection,
        embedder=_model(
            args.embedder_provider,
            model=args.embedder_model,
            api_key=args.embedder_api_key,
            base_url=args.embedder_base_url,
            dims=args.embedder_dims,
        ),
        llm=_model(
            args.llm_provider, model=args.llm_model, api_key=args.llm_api_key, base_url=args.llm_base_url
        ),
        config_file=Path(args.config_file) if args.config_file else None,
        max_body_bytes=args.max_body_bytes,
        host=args.host or ("127.0.0.1" if embedded else "0.0.0.0"),
        cors_allowed_origins=origins_of(args.cors_allowed_origins),
        clients_file=Path(args.clients_file).expanduser() if args.clients_file else None,
        clients_reload_seconds=args.clients_reload_seconds,
        qdrant_ca_file=Path(args.qdrant_ca_file) if args.qdrant_ca_file else None,
    )


def origins_of(value: str) -> tuple[str, ...]:
    """The origins of a comma-separated list (blanks and repeats dropped); a bad one stops the server."""
    origins = tuple(dict.fromkeys(o.strip().rstrip("/") for o in value.split(",") if o.strip()))
    for origin in origins:
        if origin != "*" and not ORIGIN.fullmatch(origin):
            raise SystemExit(f"--cors-allowed-origins: not an origin (scheme://host[:port]): {origin}")
    return origins


def run(args: argparse.Namespace) -> int:
    log_config = setup_logging(args.log_format)
    if args.embedded:
        keep_data_private(args.data_dir.expanduser().resolve())
    settings = settings_from_args(args)
    where = serving.listening(args, settings.host)
    if args.embedded:
        # mem0 writes a small config file under MEM0_DIR at import; keep it beside the data.
        os.environ.setdefault("MEM0_DIR", str(args.data_dir.expanduser().resolve() / "mem0"))
    else:
        os.environ.setdefault("MEM0_DIR", f"{env.SCRATCH_DIR}/mem0")

    from memory_operator.server.app import ServiceSlot, create_app
    from memory_operator.server.auth import ApiKeys
    from memory_operator.server.build import build_service, offline_environment
    from memory_operator.server.config import load_config
    from memory_operator.server.metrics import ServerMetrics

    offline_environment()
    config = load_config(settings.config_file)
    metrics = ServerMetrics()
    slot = ServiceSlot(build=lambda: build_service(settings, config, metrics))
    watcher = clients_watcher(settings, metrics)
    app = create_app(
        slot,
        ApiKeys(
            settings.api_key,
            settings.read_only_api_key,
            clients=watcher.directory if watcher is not None else None,
        ),
        metrics,
        settings.max_body_bytes,
        host=settings.host,
        cors_origins=settings.cors_allowed_origins,
        settings=settings,
    )
    if args.embedded:
        shown_host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
        print(f"Memory server: {where.scheme}://{shown_host}:{args.port}", flush=True)
        print(f"API key: {settings.api_key}", flush=True)
        print(f"Data: {settings.qdrant_path}", flush=True)
        if watcher is not None:
            print(f"Clients: {len(watcher.directory)} from {settings.clients_file}", flush=True)
    try:
        serving.serve(app, where, log_config)
    finally:
        if watcher is not None:
            watcher.stop()
    return 0


def clients_watcher(settings: ServerSettings, metrics: Any) -> Any:
    """The clients file's watcher, started (None without a file). A file that does not load at start
    stops the server: a typo must not start it with fewer clients than meant."""
    if settings.clients_file is None:
        return None
    from memory_operator.server.clients import ClientDirectory, ClientsFileWatcher, load_clients

    try:
        directory = ClientDirectory(load_clients(settings.clients_file))
    except ValueError as error:
        raise SystemExit(f"--clients-file {settings.clients_file}: {error}") from None
    watcher = ClientsFileWatcher(
        settings.clients_file,
        directory,
        settings.clients_reload_seconds,
        on_error=metrics.clients_reload_errors.inc,
    )
    return watcher.start()
