"""The Kubernetes client's packages, loaded by name on first use instead of all at once.

`import kubernetes` (which Kopf does, as does any `from kubernetes.client import ...`) runs the
generated `__init__` files of `kubernetes`, `kubernetes.client` and its `api` and `models` packages,
which import every API and model class of the client: some 860 modules and 60 MB, most of the
operator's memory, for the handful of classes it uses. Those files do nothing but re-export names of
their submodules, so each is replaced by a module that resolves the same names when they are first
read: the same modules and classes, loaded only when used.

A package whose `__init__` does anything else is left as it is, and so is one imported already.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

# Parents first: a subpackage is found through its parent's path.
PACKAGES = (
    "kubernetes",
    "kubernetes.client",
    "kubernetes.client.api",
    "kubernetes.client.models",
    "kubernetes.utils",
)

# A name a package re-exports: (module to import, attribute of it, or None for the module itself).
Export = tuple[str, str | None]


def install() -> None:
    """Make the re-exporting packages of the client lazy, unless the client is imported already."""
    if any(name in sys.modules for name in PACKAGES):
        return
    for name in PACKAGES:
        module = lazy_package(name)
        if module is None:
            return  # this one and those below it load as usual
        sys.modules[name] = module
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, module)


def lazy_package(name: str) -> ModuleType | None:
    """The package `name` with its `__init__` read, not run; None when it cannot be done safely."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None or not spec.submodule_search_locations:
        return None
    found = exports(name, Path(spec.origin).read_text(encoding="utf-8"))
    if found is None:
        return None
    names, constants = found
    module = importlib.util.module_from_spec(spec)
    module.__dict__.update(constants)
    module.__dict__["__getattr__"] = _resolver(module, names)
    module.__dict__["__dir__"] = lambda: sorted({*module.__dict__, *names})
    # `from package import *` takes every name, as it does from the package itself.
    module.__dict__["__all__"] = sorted(n for n in names if not n.startswith("_"))
    return module


def exports(package: str, source: str) -> tuple[dict[str, Export], dict[str, Any]] | None:
    """What an `__init__` made only of imports from its own submodules and constant assignments
    defines; None for any other statement."""
    names: dict[str, Export] = {}
    constants: dict[str, Any] = {}
    for statement in ast.parse(source).body:
        if isinstance(statement, ast.ImportFrom):
            if statement.module == "__future__":
                continue
            source_module = _absolute(package, statement)
            if source_module is None:
                return None
            for alias in statement.names:
                bound = alias.asname or alias.name
                if statement.module is None:
                    names[bound] = (f"{source_module}.{alias.name}", None)  # from . import client
                else:
                    names[bound] = (source_module, alias.name)
        elif isinstance(statement, ast.Assign):
            targets = [t.id for t in statement.targets if isinstance(t, ast.Name)]
            if len(targets) != len(statement.targets):
                return None
            try:
                value = ast.literal_eval(statement.value)
            except ValueError:
                return None  # computed on import
            constants.update(dict.fromkeys(targets, value))
        elif not (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)):
            return None  # anything but a docstring: this package does work on import
    return names, constants


def _absolute(package: str, statement: ast.ImportFrom) -> str | None:
    """The module an import reads from, only when it lies inside `package`."""
    if statement.level:
        base = package.rsplit(".", statement.level - 1)[0] if statement.level > 1 else package
        return f"{base}.{statement.module}" if statement.module else base
    module = statement.module or ""
    return module if module.startswith(f"{package}.") else None


def _resolver(module: ModuleType, names: dict[str, Export]) -> Callable[[str], Any]:
    def resolve(attribute: str) -> Any:
        if attribute not in names:
            raise AttributeError(f"module {module.__name__!r} has no attribute {attribute!r}")
        source, name = names[attribute]
        imported = importlib.import_module(source)
        value = imported if name is None else getattr(imported, name)
        setattr(module, attribute, value)  # resolved once
        return value

    return resolve
