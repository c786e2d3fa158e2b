"""The `memory-operator` command: one entry point for every role the image plays."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from memory_operator import __version__

# Subcommand, module, help. Each module defines `configure(parser)` and `run(args) -> int`, and keeps
# heavy imports (mem0, kopf, torch) inside `run`, so that `--help` stays fast.
COMMANDS: list[tuple[str, str, str]] = [
    ("run", "memory_operator.controller.main", "run the operator (Kopf) against a cluster"),
    ("render", "memory_operator.commands.render", "print the manifests the operator would apply for a store"),
    ("crds", "memory_operator.commands.crds", "print or write the CustomResourceDefinitions"),
    ("server", "memory_operator.server.main", "serve the memory API (REST and MCP) on mem0 and Qdrant"),
    (
        "expire",
        "memory_operator.expire.main",
        "purge memories by a policy's retention rules, then audit duplicates and stale ones (CronJob role)",
    ),
    (
        "canary",
        "memory_operator.canary.main",
        "measure a store's recall@k and search latency with a scripted scenario (CronJob, Helm test)",
    ),
    (
        "erase",
        "memory_operator.erase.main",
        "erase every memory of one user, agent or run id from a store (Job role of a MemoryErasure)",
    ),
    ("backup", "memory_operator.backup.main", "snapshot a store's collections to its backup destination"),
    ("restore", "memory_operator.backup.restore", "restore a store's collections from a backup"),
    (
        "collection",
        "memory_operator.collection.main",
        "create the store's Qdrant collection as specified and replicate its shards (Job role)",
    ),
    (
        "upgrade-check",
        "memory_operator.collection.upgrade_check",
        "wait until every Qdrant peer has joined and every shard replica is active (Job role of an upgrade)",
    ),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memory-operator",
        description="Long-term memory for AI agents on Kubernetes: operator, memory server and jobs.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name, help_text in COMMANDS:
        module = importlib.import_module(module_name)
        sub = commands.add_parser(
            name, help=help_text, description=help_text[0].upper() + help_text[1:] + "."
        )
        module.configure(sub)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
