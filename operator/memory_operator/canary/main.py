"""`memory-operator canary`: the recall canary, against a store's memory server.

Writes the scenario's facts into the reserved synthetic scope, asks its questions, prints a JSON
summary (recall@k, latency p50/p95, passed) on stdout and leaves it as the container's termination
message. Exit code 0 when the run passed, 1 when it did not (the summary says why).

In a cluster the canary CronJob and the chart's Helm test set the server's URL and key. Against a
server on this machine (`memory-operator server --embedded`), run it with no option at all: it calls
http://127.0.0.1:8765 with the key the embedded server keeps in ./data/api-key.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from memory_operator import env
from memory_operator.api.canary import CanarySummary

log = logging.getLogger("memory_operator.canary")

DEFAULT_TOP_K = 5
DEFAULT_MIN_RECALL = 0.95
DEFAULT_MAX_P95_MS = 2000.0
DEFAULT_DATA_DIR = Path("data")
# The embedded server's key file in its data directory (`memory_operator.server.main`).
KEY_FILE_NAME = "api-key"
REQUEST_TIMEOUT = 60.0


class ConfigurationError(Exception):
    """The canary's settings are missing or invalid."""


def configure(parser: argparse.ArgumentParser) -> None:
    from memory_operator.canary.scenario import DEFAULT_VERSION

    parser.add_argument(
        "--server-url",
        help=f"the memory server's base URL (default: ${env.SERVER_URL}, else "
        f"http://127.0.0.1:{env.SERVER_PORT})",
    )
    parser.add_argument(
        "--api-key",
        help=f"read-write key of the server (default: ${env.API_KEY}, else the embedded server's key "
        "file in --data-dir)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="the embedded server's data directory, whose key file is read when no key is given "
        "(default: %(default)s)",
    )
    parser.add_argument("--scenario", default=DEFAULT_VERSION, help="scenario version (default: %(default)s)")
    parser.add_argument(
        "--top-k",
        type=int,
        default=DEFAULT_TOP_K,
        help="k of recall@k: results per question (default: %(default)s)",
    )
    parser.add_argument(
        "--min-recall",
        type=float,
        default=DEFAULT_MIN_RECALL,
        help="fail below this recall@k (default: %(default)s)",
    )
    parser.add_argument(
        "--max-p95-ms",
        type=float,
        default=DEFAULT_MAX_P95_MS,
        help="fail above this p95 search latency in milliseconds (default: %(default)s)",
    )
    parser.add_argument(
        "--termination-log",
        type=Path,
        default=Path(env.TERMINATION_LOG),
        help="where to write the summary for Kubernetes (default: %(default)s)",
    )
    parser.add_argument("--store-name", help=f"name of the MemoryStore (default: ${env.STORE_NAME})")
    parser.add_argument("--store-namespace", help=f"its namespace (default: ${env.STORE_NAMESPACE})")


def api_key(args: argparse.Namespace) -> str | None:
    """The key given, else the environment's, else the embedded server's key file; None: no key."""
    if args.api_key:
        return str(args.api_key)
    if env.get(env.API_KEY):
        return env.get(env.API_KEY)
    key_file = Path(args.data_dir) / KEY_FILE_NAME
    if key_file.is_file():
        return key_file.read_text().strip() or None
    return None


def server_url(args: argparse.Namespace) -> str:
    return str(args.server_url or env.get(env.SERVER_URL) or f"http://127.0.0.1:{env.SERVER_PORT}").rstrip(
        "/"
    )


def execute(args: argparse.Namespace, summary: CanarySummary) -> None:
    import httpx

    from memory_operator import tls
    from memory_operator.canary import probe, scenario

    if args.top_k < 1:
        raise ConfigurationError("--top-k must be at least 1")
    try:
        chosen = scenario.load(args.scenario)
    except scenario.ScenarioError as error:
        raise ConfigurationError(str(error)) from error
    key = api_key(args)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    url = server_url(args)
    log.info(
        "canary %s against %s: %d facts, %d questions, k=%d",
        chosen.version,
        url,
        len(chosen.facts),
        len(chosen.questions),
        args.top_k,
    )
    # Over https the server's certificate is verified against the store's CA bundle (and the job
    # presents its client certificate to a server that demands one).
    verify = tls.verify(url)
    with httpx.Client(base_url=url, headers=headers, timeout=REQUEST_TIMEOUT, verify=verify) as http:
        probe.run_scenario(probe.Probe(http), chosen, summary)


def run(args: argparse.Namespace) -> int:
    from memory_operator.canary.probe import ServerError

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    # One line per request would drown the result.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    started = time.monotonic()
    summary = CanarySummary(
        store=args.store_name or env.get(env.STORE_NAME, "") or "",
        namespace=args.store_namespace or env.get(env.STORE_NAMESPACE, "") or "",
        top_k=args.top_k,
        min_recall=args.min_recall,
        max_latency_p95_milliseconds=args.max_p95_ms,
    )
    try:
        execute(args, summary)
    except (ConfigurationError, ServerError) as error:
        summary.error = str(error)[:2048]
    except Exception as error:
        log.exception("the canary failed")
        summary.error = f"unexpected {type(error).__name__}: {error}"[:2048]
    summary.duration_seconds = round(time.monotonic() - started, 3)
    if summary.passed:
        log.info(
            "passed: recall@%d %.4f, p50 %s ms, p95 %s ms",
            summary.top_k,
            summary.recall or 0.0,
            summary.latency_p50_milliseconds,
            summary.latency_p95_milliseconds,
        )
    else:
        log.error("failed: %s", summary.verdict())
    print(summary.to_json(), flush=True)
    try:
        args.termination_log.write_text(summary.termination_message())
    except OSError as error:
        log.warning(
            "could not write the termination log %s: %s", args.termination_log, error.strerror or error
        )
    return 0 if summary.passed else 1
