#!/usr/bin/env python3
"""The image's size, layer by layer, and its biggest contributors (run as root, after building it).

    scripts/build-image.sh && scripts/build-image.sh --embedder
    python benchmarks/image_size.py [IMAGE ...]   # default: both images scripts/build-image.sh makes

Sizes are uncompressed (what a node stores). Layers come from the image's manifest, each beside the
instruction that made it; the contributors are the biggest folders of the virtual environment and of
the system, measured on the image's file system (mounted read-only with buildah).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from memory_operator import images

ROOT = Path(__file__).resolve().parents[1]
VENV = Path("opt/memory-operator")
STORAGE = ["--storage-driver", os.environ["STORAGE_DRIVER"]] if os.environ.get("STORAGE_DRIVER") else []


def default_images() -> list[str]:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    repository = images.DEFAULT_BUILTIN_SERVER_IMAGE.rsplit(":", 1)[0]
    return [f"{repository}:{version}", images.DEFAULT_BUILTIN_SERVER_IMAGE]


def buildah(*args: str) -> str:
    return subprocess.run(["buildah", *STORAGE, *args], check=True, capture_output=True, text=True).stdout


def megabytes(size: int) -> str:
    return f"{size / 1e6:8.1f} MB"


def layers(image: str) -> list[tuple[int, str]]:
    """(size, instruction) of each layer, oldest first."""
    inspected: dict[str, Any] = json.loads(buildah("inspect", "--type", "image", image))
    sizes = [layer["size"] for layer in json.loads(inspected["Manifest"])["layers"]]
    made = [entry for entry in inspected["History"] if not entry.get("empty_layer")]
    instructions = [entry.get("created_by", "").removeprefix("/bin/sh -c ") for entry in made]
    if len(instructions) != len(sizes):
        instructions = ["?"] * len(sizes)
    return list(zip(sizes, instructions, strict=True))


@contextmanager
def mounted(image: str) -> Iterator[Path]:
    container = buildah("from", "--pull=never", image).strip()
    try:
        yield Path(buildah("mount", container).strip())
    finally:
        buildah("umount", container)
        buildah("rm", container)


def tree_size(path: Path) -> int:
    if path.is_symlink() or not path.is_dir():
        return path.lstat().st_size
    return sum(item.lstat().st_size for item in path.rglob("*") if not item.is_dir() or item.is_symlink())


def contributors(root: Path) -> list[tuple[int, str]]:
    """Sizes of the site-packages entries and of the big system folders, biggest first."""
    found: list[tuple[int, str]] = []
    for site_packages in (root / VENV / "lib").glob("python3*/site-packages"):
        for entry in site_packages.iterdir():
            found.append((tree_size(entry), f"/{entry.relative_to(root)}"))
    for folder in ("usr/lib/x86_64-linux-gnu", "usr/lib/python3.11", "usr/share", "usr/bin", "var"):
        if (root / folder).exists():
            found.append((tree_size(root / folder), f"/{folder} (system)"))
    return sorted(found, reverse=True)


def report(image: str, top: int) -> None:
    made = layers(image)
    print(f"{image}: {megabytes(sum(size for size, _ in made)).strip()} in {len(made)} layers")
    for size, instruction in made:
        print(f"  {megabytes(size)}  {instruction[:100]}")
    with mounted(image) as root:
        venv = tree_size(root / VENV)
        bytecode = sum(path.stat().st_size for path in (root / VENV).rglob("*.pyc"))
        print(f"  virtual environment {megabytes(venv).strip()}", end=", ")
        print(f"of which compiled bytecode {megabytes(bytecode).strip()}")
        print("  biggest contributors:")
        for size, name in contributors(root)[:top]:
            print(f"  {megabytes(size)}  {name}")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("images", nargs="*", help="images in the local storage (default: both variants)")
    parser.add_argument("--top", type=int, default=20, help="contributors listed (default 20)")
    options = parser.parse_args()
    for image in options.images or default_images():
        report(image, options.top)


if __name__ == "__main__":
    main()
