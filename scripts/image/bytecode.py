"""Keeps compiled bytecode (.pyc) only for the modules that the image's roles import.

Usage: bytecode.py PREFIX   (run with the virtual environment's interpreter; PREFIX is its folder)

pip compiles every module it installs: over 300 MB for the image with the embedding model, most of it
for modules that nothing imports (transformers' hundreds of model families, torch's compilers, sympy's
corners). The image keeps bytecode for what its roles import: every module of memory_operator and, with
the embedding model, what loading the model and embedding a sentence imports. Any other module still
works; Python compiles it in memory when imported (the root file system is read-only, nothing is
written). A module of memory_operator that cannot be imported fails the build. The bytecode is
unchecked (unchecked-hash): the image never changes a source.
"""

from __future__ import annotations

import compileall
import json
import py_compile
import subprocess
import sys
from pathlib import Path

IMPORT_EVERY_ROLE = r"""
import importlib, json, pkgutil, sys
import memory_operator

for module in pkgutil.walk_packages(memory_operator.__path__, "memory_operator."):
    if not module.name.endswith(".__main__"):  # that one runs the command line
        importlib.import_module(module.name)
try:
    from memory_operator.server.settings import local_model_path
    from sentence_transformers import SentenceTransformer
except ImportError:  # the image without the embedding model
    pass
else:
    SentenceTransformer(local_model_path(), device="cpu").encode(["warm up"])
files = [getattr(module, "__file__", None) for module in list(sys.modules.values())]
print(json.dumps(sorted({file for file in files if file and file.endswith(".py")})))
"""


def main(prefix: Path) -> None:
    imported = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERY_ROLE],
        capture_output=True,
        text=True,
        env={
            "PYTHONDONTWRITEBYTECODE": "1",
            "HF_HUB_OFFLINE": "1",
            "MEM0_TELEMETRY": "false",
            "HOME": "/tmp",
        },
    )
    if imported.returncode != 0:  # a module that cannot be imported is a broken image
        raise SystemExit(f"bytecode: importing every module failed:\n{imported.stderr}")
    modules = [Path(file) for file in json.loads(imported.stdout.splitlines()[-1])]
    removed = 0
    for cached in prefix.rglob("*.pyc"):
        removed += cached.stat().st_size
        cached.unlink()
    compiled = 0
    for module in modules:
        if module.is_relative_to(prefix):
            compileall.compile_file(
                module, quiet=2, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH
            )
            compiled += 1
    kept = sum(cached.stat().st_size for cached in prefix.rglob("*.pyc"))
    print(
        f"bytecode: {removed / 2**20:.0f} MB of .pyc replaced by {kept / 2**20:.0f} MB for {compiled} modules"
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]).resolve())
