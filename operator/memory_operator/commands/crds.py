"""`memory-operator crds`: print the CRDs, or write them into a folder (how `crds/` is made)."""

from __future__ import annotations

import argparse
from pathlib import Path

from memory_operator.crdgen import rendered_files


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output-dir",
        "-o",
        type=Path,
        help="write one file per CRD into this folder instead of printing them",
    )


def run(args: argparse.Namespace) -> int:
    files = rendered_files()
    if args.output_dir is None:
        print("".join(files.values()), end="")
        return 0
    args.output_dir.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (args.output_dir / name).write_text(content)
    return 0
