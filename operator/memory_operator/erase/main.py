"""`memory-operator erase`: the Job of a MemoryErasure, erasing one subject's memories from its store.

The operator renders the Job with the store's Qdrant settings and mounts the store's erasures Secret
(`erasures.json`, an `ErasuresFile`), where the job finds its erasure's subject by name: a subject's id
is never in the pod's arguments or environment, in the summary or in a log line. The job waits for
Qdrant to answer, erases (`memory_operator.erase.core`), counts what is left, prints its summary
(`ErasureSummary`) and leaves it as its termination message; exit code 1 when it failed. A store whose
Qdrant cannot be reached (or fails on its side) fails with `StoreUnavailable`: the operator runs the
job again later, with a growing delay, and says so in the erasure's status.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from memory_operator import env

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

    from memory_operator.api.erasure import ErasureEntry, ErasuresFile, ErasureSummary

logger = logging.getLogger("memory_operator.erase")
DEFAULT_COLLECTION = "memories"
DEFAULT_WAIT_SECONDS = 60.0


class ErasureError(Exception):
    """The erasure cannot be done; `reason` says why in one CamelCase word."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def configure(parser: argparse.ArgumentParser) -> None:
    from memory_operator.backup.summary import add_summary_arguments

    parser.epilog = (
        f"Settings come from the environment: {env.QDRANT_URL}, {env.QDRANT_API_KEY}, {env.COLLECTION}, "
        f"{env.SERVER_FLAVOR}, {env.STORE_NAME} and {env.ERASURES_FILE}."
    )
    parser.add_argument("--erasure", required=True, help="the MemoryErasure to run (its entry in the file)")
    parser.add_argument(
        "--erasures-file",
        type=Path,
        default=None,
        help=f"the erasures file (default ${env.ERASURES_FILE}, else {env.ERASURES_PATH})",
    )
    parser.add_argument("--qdrant-path", type=Path, help="a local Qdrant directory instead of a URL")
    parser.add_argument(
        "--wait-timeout",
        type=float,
        default=DEFAULT_WAIT_SECONDS,
        help=f"seconds to wait for Qdrant to be ready before giving up (default {DEFAULT_WAIT_SECONDS:g})",
    )
    add_summary_arguments(parser)


def load_file(path: Path) -> ErasuresFile:
    """The erasures file (`InvalidSettings` when it cannot be read)."""
    from pydantic import ValidationError

    from memory_operator.api.erasure import INVALID_SETTINGS, ErasuresFile

    try:
        return ErasuresFile.model_validate_json(path.read_text())
    except OSError as error:
        raise ErasureError(
            f"cannot read the erasures file {path}: {error.strerror or error}", INVALID_SETTINGS
        ) from error
    except ValidationError as error:
        # A validation error quotes the values: name the places only.
        places = ", ".join(".".join(str(p) for p in e["loc"]) for e in error.errors()[:5])
        raise ErasureError(f"the erasures file {path} is invalid at {places}", INVALID_SETTINGS) from None


def find_entry(path: Path, name: str) -> ErasureEntry:
    from memory_operator.api.erasure import INVALID_SETTINGS

    entry = load_file(path).entry(name)
    if entry is None:
        raise ErasureError(f"the erasures file {path} has no erasure {name} to run", INVALID_SETTINGS)
    return entry


def outage(error: BaseException) -> bool:
    """Whether `error` means Qdrant is down or failing on its side (worth running again later), as
    opposed to a refusal (a wrong key, a bad request)."""
    from qdrant_client.http.exceptions import UnexpectedResponse

    from memory_operator.qdrant_node import QdrantError
    from memory_operator.server.store import backend_errors

    if isinstance(error, UnexpectedResponse):
        return error.status_code is None or error.status_code >= 500 or error.status_code == 429
    if isinstance(error, QdrantError):
        return error.status is None or error.status >= 500
    return isinstance(error, backend_errors())


def erase(client: QdrantClient, collection: str, entry: ErasureEntry, summary: ErasureSummary) -> None:
    from memory_operator.erase.core import erase_subject

    subject = entry.subject
    erased = erase_subject(client, collection, subject.payload_key, subject.value)
    summary.deleted = erased.memories
    summary.related_deleted = erased.related
    summary.remaining = erased.remaining
    summary.collections = erased.collections
    logger.info(
        "erasure %s: %d memories of a %s subject deleted, %d related records, %d left",
        entry.name,
        erased.memories,
        subject.kind,
        erased.related,
        erased.remaining,
    )


def execute(args: argparse.Namespace, summary: ErasureSummary) -> None:
    """Find the subject, connect, erase; `summary` is filled as it goes, failures are raised."""
    from qdrant_client import QdrantClient

    from memory_operator.api.erasure import FLAVOR_NOT_SUPPORTED, INVALID_SETTINGS, STORE_UNAVAILABLE
    from memory_operator.qdrant_node import QdrantError, QdrantNode

    flavor = env.get(env.SERVER_FLAVOR, "builtin")
    if flavor != "builtin":
        raise ErasureError(
            f"the {flavor} flavor keeps memory texts in its own database, beyond the operator's reach",
            FLAVOR_NOT_SUPPORTED,
        )
    path = args.erasures_file or Path(env.get(env.ERASURES_FILE, env.ERASURES_PATH) or env.ERASURES_PATH)
    entry = find_entry(path, args.erasure)
    summary.subject_kind = entry.subject.kind
    collection = env.get(env.COLLECTION, DEFAULT_COLLECTION) or DEFAULT_COLLECTION
    if args.qdrant_path is not None:
        local = QdrantClient(path=str(args.qdrant_path))
        try:
            erase(local, collection, entry, summary)
        finally:
            local.close()
        return
    url = env.get(env.QDRANT_URL)
    if not url:
        raise ErasureError(f"no Qdrant to erase from: set {env.QDRANT_URL}", INVALID_SETTINGS)
    with QdrantNode(url, env.get(env.QDRANT_API_KEY)) as node:
        try:
            node.wait_until_ready(args.wait_timeout)
        except QdrantError as error:
            raise ErasureError(str(error), STORE_UNAVAILABLE) from error
        erase(node.client, collection, entry, summary)


def run(args: argparse.Namespace) -> int:
    from memory_operator.api.erasure import QDRANT_ERROR, STORE_UNAVAILABLE, ErasureSummary
    from memory_operator.backup.summary import configure_logging, emit_summary, now, rfc3339

    configure_logging(args.verbose)
    summary = ErasureSummary(
        erasure=args.erasure, store=env.get(env.STORE_NAME, "") or "", start_time=rfc3339(now())
    )
    try:
        execute(args, summary)
        summary.phase = "Completed"
    except ErasureError as error:
        summary.reason, summary.error = error.reason, str(error)
    except Exception as error:
        if not outage(error) and not _refusal(error):
            raise
        summary.reason = STORE_UNAVAILABLE if outage(error) else QDRANT_ERROR
        # The error's type and Qdrant's status only: its text may quote the request's filter.
        summary.error = f"Qdrant failed the erasure: {_described(error)}"
    if summary.error:
        logger.error("erasure %s failed (%s): %s", args.erasure, summary.reason, summary.error)
    summary.stop_time = rfc3339(now())
    emit_summary(summary, args.termination_log)
    return 0 if summary.succeeded else 1


def _refusal(error: BaseException) -> bool:
    from qdrant_client.http.exceptions import UnexpectedResponse

    from memory_operator.qdrant_node import QdrantError

    return isinstance(error, UnexpectedResponse | QdrantError)


def _described(error: BaseException) -> str:
    from memory_operator.qdrant_node import QdrantError

    if isinstance(error, QdrantError):
        return str(error)[:1024]  # the node's URL and Qdrant's reason, never a request body
    status = getattr(error, "status_code", None)
    return f"{type(error).__name__}" + (f" (HTTP {status})" if status else "")
