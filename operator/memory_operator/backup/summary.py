"""The JSON summary a backup or restore job prints and leaves as its container's termination message."""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memory_operator.api.collection import SummaryModel

# Kubernetes keeps at most 4096 bytes of a termination message.
TERMINATION_MESSAGE_LIMIT = 4096
logger = logging.getLogger("memory_operator.backup")


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def rfc3339(when: datetime.datetime) -> str:
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fit(summary: dict[str, Any], limit: int = TERMINATION_MESSAGE_LIMIT, list_key: str = "snapshots") -> str:
    """`summary` as compact JSON under `limit` bytes, dropping trailing entries of `list_key` if needed.

    No marker is added, so that a trimmed backup summary still parses as a MemoryBackupStatus; the whole
    list is in the job's log and the backup's manifest.
    """
    data = dict(summary)
    text = json.dumps(data, separators=(",", ":"))
    items = list(data.get(list_key) or [])
    while len(text.encode()) >= limit and items:
        items.pop()
        data[list_key] = items
        text = json.dumps(data, separators=(",", ":"))
    if len(text.encode()) >= limit and isinstance(data.get("error"), str):
        overflow = len(text.encode()) - limit + 16
        data["error"] = data["error"][: max(0, len(data["error"]) - overflow)] + "..."
        text = json.dumps(data, separators=(",", ":"))
    return text


def emit(
    summary: dict[str, Any],
    termination_log: Path | None,
    list_key: str = "snapshots",
    log_only: Collection[str] = (),
) -> None:
    """Print the whole summary and write what fits to the termination log.

    Keys in `log_only` are printed only: the operator validates the termination message against a
    status schema that has no place for them.
    """
    message = {key: value for key, value in summary.items() if key not in log_only}
    _print_and_write(summary, termination_log, lambda: fit(message, list_key=list_key))


def add_summary_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments every job shares: where its summary goes, and how much it logs."""
    from memory_operator import env

    parser.add_argument(
        "--termination-log",
        type=Path,
        default=Path(env.TERMINATION_LOG),
        help=f"file for the JSON summary the operator reads (default {env.TERMINATION_LOG})",
    )
    parser.add_argument("--verbose", action="store_true", help="log debug messages")


def emit_summary(summary: SummaryModel, termination_log: Path | None) -> None:
    """Print a job's whole summary and write what fits to the termination log."""
    _print_and_write(summary.to_wire(), termination_log, summary.termination_message)


def _print_and_write(
    whole: Mapping[str, Any], termination_log: Path | None, message: Callable[[], str]
) -> None:
    print(json.dumps(whole, indent=2), file=sys.stdout, flush=True)
    if termination_log is None:
        return
    try:
        termination_log.write_text(message())
    except OSError as error:
        # Outside a pod (or without the file) the summary on stdout is all there is.
        logger.warning("cannot write the termination log %s: %s", termination_log, error)


def configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request at INFO; keep the job's log about the backup itself.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("botocore").setLevel(logging.WARNING)
