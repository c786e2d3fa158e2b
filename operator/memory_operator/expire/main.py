"""`memory-operator expire`: the expiration CronJob's command.

Reads a MemoryPolicy's spec, deletes (or, in a dry run, counts and lists) what its retention rules
select in the store's collection, then, when the policy has an `audit`, counts the duplicate and stale
memories left (`memory_operator.expire.audit`), prints a JSON summary on stdout and leaves it as the
container's termination message. Exit code 0 when the run succeeded, 1 when it failed (the summary says why).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memory_operator import env
from memory_operator.api.jobs import ExpirationSummary

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

    from memory_operator.api.policy import AuditSpec
    from memory_operator.expire.purge import Deleter

log = logging.getLogger("memory_operator.expire")

DEFAULT_COLLECTION = "memories"
# OpenMemory's collection is fixed (it has no setting for it).
OPENMEMORY_COLLECTION = "openmemory"
FLAVORS = ("builtin", "openmemory")


class ConfigurationError(Exception):
    """The policy file or the job's settings are missing or invalid."""


def _env_help(text: str, name: str) -> str:
    return f"{text} (default: ${name})"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policy-file",
        type=Path,
        default=None,
        help=f"JSON of the MemoryPolicy spec (default: ${env.POLICY_FILE}, else {env.POLICY_PATH})",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="count and list what would be deleted, delete nothing"
    )
    parser.add_argument(
        "--termination-log",
        type=Path,
        default=Path(env.TERMINATION_LOG),
        help="where to write the summary for Kubernetes (default: %(default)s)",
    )
    qdrant = parser.add_argument_group("Qdrant")
    qdrant.add_argument("--qdrant-url", help=_env_help("Qdrant's URL", env.QDRANT_URL))
    qdrant.add_argument("--qdrant-api-key", help=_env_help("Qdrant's API key", env.QDRANT_API_KEY))
    qdrant.add_argument("--qdrant-path", type=Path, help="a local Qdrant directory instead of a URL")
    qdrant.add_argument(
        "--collection",
        help=_env_help("collection of the memories", env.COLLECTION)
        + f"; else {DEFAULT_COLLECTION}, or {OPENMEMORY_COLLECTION} for that flavor",
    )
    qdrant.add_argument(
        "--timeout", type=float, default=300.0, help="seconds per Qdrant call (default: %(default)s)"
    )
    server = parser.add_argument_group("memory server")
    server.add_argument("--server-url", help=_env_help("the memory server's URL", env.SERVER_URL))
    server.add_argument(
        "--server-flavor", choices=FLAVORS, help=_env_help("the server's flavor", env.SERVER_FLAVOR)
    )
    server.add_argument("--api-key", help=_env_help("key presented to the memory server", env.API_KEY))
    store = parser.add_argument_group("store")
    store.add_argument("--store-name", help=_env_help("name of the MemoryStore", env.STORE_NAME))
    store.add_argument(
        "--store-namespace", help=_env_help("namespace of the MemoryStore", env.STORE_NAMESPACE)
    )
    parser.add_argument(
        "--list-limit",
        type=int,
        default=20,
        help="memory ids listed per rule in a dry run (default: %(default)s)",
    )


def _setting(value: Any, name: str, default: str | None = None) -> str | None:
    if value not in (None, ""):
        return str(value)
    return env.get(name, default)


def load_policy(path: Path) -> Any:
    """The MemoryPolicySpec in `path`: the spec itself, or a whole MemoryPolicy object."""
    from pydantic import ValidationError

    from memory_operator.api.policy import MemoryPolicySpec

    try:
        data = json.loads(path.read_text())
    except OSError as error:
        raise ConfigurationError(f"cannot read the policy file {path}: {error.strerror or error}") from error
    except ValueError as error:
        raise ConfigurationError(f"the policy file {path} is not JSON: {error}") from error
    if isinstance(data, dict) and "spec" in data and "kind" in data:
        data = data["spec"]
    try:
        return MemoryPolicySpec.model_validate(data)
    except ValidationError as error:
        raise ConfigurationError(f"the policy file {path} is not a MemoryPolicy spec: {error}") from error


def write_termination_log(path: Path, summary: ExpirationSummary) -> None:
    try:
        path.write_text(summary.termination_message())
    except OSError as error:
        log.warning("could not write the termination log %s: %s", path, error.strerror or error)


def outage_message(error: BaseException) -> str | None:
    """One line saying which backend failed, or None when `error` is not an outage but a bug."""
    from memory_operator.expire.openmemory import ServerError
    from memory_operator.server.store import backend_errors

    if isinstance(error, ServerError):
        return str(error)[:2048]
    if isinstance(error, backend_errors()):
        return f"Qdrant is unavailable: {type(error).__name__}: {error}"[:2048]
    return None


def execute(args: argparse.Namespace, summary: ExpirationSummary) -> None:
    """Load the policy, connect, and expire; fills `summary` as it goes, raises on failure."""
    import httpx
    from qdrant_client import QdrantClient

    from memory_operator import tls
    from memory_operator.expire import purge
    from memory_operator.expire.openmemory import OpenMemoryDeleter
    from memory_operator.qdrant_node import qdrant_client

    policy_path = Path(_setting(args.policy_file, env.POLICY_FILE, env.POLICY_PATH) or env.POLICY_PATH)
    spec = load_policy(policy_path)
    summary.dry_run = bool(args.dry_run or spec.dry_run)
    flavor = _setting(args.server_flavor, env.SERVER_FLAVOR, "builtin")
    if flavor not in FLAVORS:
        raise ConfigurationError(f"unknown server flavor {flavor!r}: expected one of {', '.join(FLAVORS)}")
    default_collection = OPENMEMORY_COLLECTION if flavor == "openmemory" else DEFAULT_COLLECTION
    collection = _setting(args.collection, env.COLLECTION, default_collection) or default_collection
    summary.collection = collection
    url = _setting(args.qdrant_url, env.QDRANT_URL)
    if args.qdrant_path is None and not url:
        raise ConfigurationError(f"no Qdrant to expire: set ${env.QDRANT_URL}, --qdrant-url or --qdrant-path")
    now = dt.datetime.now(dt.UTC)
    log.info(
        "expiring %s in collection %s: %d rules%s",
        summary.store or "a store",
        collection,
        len(spec.rules),
        " (dry run)" if summary.dry_run else "",
    )
    if args.qdrant_path is not None:
        client = QdrantClient(path=str(args.qdrant_path))
    else:
        client = qdrant_client(str(url), _setting(args.qdrant_api_key, env.QDRANT_API_KEY), int(args.timeout))
    http: httpx.Client | None = None
    try:
        deleter: purge.Deleter = purge.QdrantDeleter(client, collection)
        if flavor == "openmemory" and not summary.dry_run:
            server_url = _setting(args.server_url, env.SERVER_URL)
            if not server_url:
                raise ConfigurationError(f"the openmemory flavor needs its API: set ${env.SERVER_URL}")
            api_key = _setting(args.api_key, env.API_KEY)
            headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
            http = httpx.Client(
                base_url=server_url,
                headers=headers,
                timeout=args.timeout,
                verify=tls.verify(server_url),
            )
            deleter = OpenMemoryDeleter(client, collection, http)
        purge.expire_store(
            client,
            collection,
            spec,
            summary,
            now=now,
            deleter=deleter,
            list_limit=max(args.list_limit, 0),
            create_indexes=args.qdrant_path is None,
        )
        if spec.audit is not None:
            audit_store(
                client,
                collection,
                spec.audit,
                summary,
                now=now,
                deleter=deleter,
                local=args.qdrant_path is not None,
            )
    finally:
        if http is not None:
            http.close()
        client.close()


def audit_store(
    client: QdrantClient,
    collection: str,
    spec: AuditSpec,
    summary: ExpirationSummary,
    *,
    now: dt.datetime,
    deleter: Deleter,
    local: bool,
) -> None:
    """The audit after the run, into `summary.audit`; entities of deduplicated memories are unlinked."""
    from memory_operator.expire import audit, purge

    summary.audit = audit.audit_collection(
        client, collection, spec, now=now, dry_run=summary.dry_run, deleter=deleter, local=local
    )
    if summary.audit.deduplicated:
        summary.entities_pruned += purge.prune_entity_links(client, collection)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    started = time.monotonic()
    summary = ExpirationSummary(
        store=_setting(args.store_name, env.STORE_NAME, "") or "",
        namespace=_setting(args.store_namespace, env.STORE_NAMESPACE, "") or "",
        dry_run=bool(args.dry_run),
    )
    try:
        execute(args, summary)
    except ConfigurationError as error:
        summary.error = str(error)
    except Exception as error:
        # An outage is an expected failure: one line, no traceback; a bug keeps its traceback.
        summary.error = outage_message(error)
        if summary.error is None:
            log.exception("expiration failed")
            summary.error = f"unexpected {type(error).__name__}: {error}"[:2048]
    summary.duration_seconds = round(time.monotonic() - started, 3)
    if summary.error:
        log.error("expiration failed: %s", summary.error)
    print(summary.to_json(), flush=True)
    write_termination_log(args.termination_log, summary)
    return 0 if summary.succeeded else 1
