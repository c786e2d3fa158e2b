"""Paths and runners shared by the install tests: the real helm and kubectl from scripts/install-tools.sh."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "memory-operator"
TOOLS = ROOT / ".tools" / "bin"
NAMESPACE = "memory-operator"
RELEASE = "memory-operator"


def tool(name: str) -> Path:
    path = TOOLS / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: run scripts/install-tools.sh", pytrace=False)
    return path


def run(args: Sequence[str | Path], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120, cwd=ROOT)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} failed:\n{result.stderr}", pytrace=False)
    return result


def helm_template_args(*extra: str | Path) -> list[str | Path]:
    return [tool("helm"), "template", RELEASE, CHART, "--namespace", NAMESPACE, *extra]


@cache
def render(*extra: str) -> list[dict[str, Any]]:
    """The objects `helm template` renders with these extra arguments (values files, --set ...)."""
    output = run(helm_template_args(*extra)).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


def kinds(objects: Sequence[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def values_files() -> list[Path]:
    return sorted((CHART / "ci").glob("*.yaml"))
