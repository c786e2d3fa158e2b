#!/usr/bin/env python3
"""Writes docs/api.md, the reference of every field of MemoryStore, MemoryPolicy, MemoryBackup,
MemoryClient and MemoryErasure.

The pydantic models of `memory_operator.api` are the source (their attribute docstrings are the
descriptions), as they are for the CRDs. `--check` fails instead of writing when the file is stale.
"""

from __future__ import annotations

import argparse
import enum
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from memory_operator.api import MemoryBackup, MemoryClient, MemoryErasure, MemoryPolicy, MemoryStore
from memory_operator.api.common import API_VERSION, ObjectMeta

OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "api.md"
KINDS: list[type[BaseModel]] = [MemoryStore, MemoryPolicy, MemoryBackup, MemoryClient, MemoryErasure]
HEADER = f"""# API reference: {API_VERSION}

Every field of the five kinds, generated from the operator's models by `scripts/generate-api-docs.py`
(do not edit by hand). Field names are as written in YAML. Defaults are applied by the API server.
See [configuration.md](configuration.md) for how the fields work together.
"""


def field_name(name: str, info: FieldInfo) -> str:
    return info.alias or name


def nested_models(annotation: Any) -> list[type[BaseModel]]:
    """The models a field's type refers to, through `Optional`, `list` and `dict`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found.extend(nested_models(arg))
    return found


def type_name(annotation: Any) -> str:
    """A short, reader-facing name of a field's type, models linked to their section."""
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in args)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(annotation))
    if origin is list:
        return f"list of {type_name(args[0])}"
    if origin is dict:
        return f"map of {type_name(args[0])} to {type_name(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " \\| ".join(f"`{member.value}`" for member in annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    names = {str: "string", int: "integer", bool: "boolean", float: "number"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def default_text(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    if info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            # Small defaults say more inline (resources); large ones are the type's own defaults.
            dumped = json.dumps(value.model_dump(by_alias=True, exclude_none=True, mode="json"))
            return f"`{dumped}`" if len(dumped) <= 100 else "see type"
    else:
        value = info.default
    if value is None or value is PydanticUndefined or value in ({}, []):
        return ""
    if isinstance(value, enum.Enum):
        value = value.value
    return f"`{json.dumps(value)}`"


def constraints(info: FieldInfo) -> str:
    """Bounds and patterns the API server enforces, as a short note."""
    notes: list[str] = []
    for item in info.metadata:
        for attribute, label in (
            ("ge", ">="),
            ("le", "<="),
            ("min_length", "min length"),
            ("max_length", "max length"),
        ):
            value = getattr(item, attribute, None)
            if value is not None:
                notes.append(f"{label} {value}")
        pattern = getattr(item, "pattern", None)
        if pattern is not None:
            notes.append(f"pattern `{pattern}`")
    return "; ".join(notes)


def cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def model_section(model: type[BaseModel], heading: str) -> str:
    description = cell(model.__doc__ or "")
    lines = [f"{heading} {model.__name__}", "", description, ""]
    if not model.model_fields:
        return "\n".join(lines)
    lines += ["| Field | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for name, info in model.model_fields.items():
        notes = constraints(info)
        description = cell(info.description or "") + (f" ({notes})" if notes else "")
        lines.append(
            f"| `{field_name(name, info)}` | {type_name(info.annotation)} | {default_text(info)} "
            f"| {cell(description)} |"
        )
    return "\n".join([*lines, ""])


def kind_sections(kind: type[BaseModel]) -> list[str]:
    """The kind's spec and status models, then every model they use, each once, in reading order."""
    sections = [f"## {kind.__name__}\n\n{cell(kind.__doc__ or '')}\n"]
    queue: list[type[BaseModel]] = []
    for name in ("spec", "status"):
        queue.extend(nested_models(kind.model_fields[name].annotation))
    seen: set[type[BaseModel]] = {ObjectMeta}
    while queue:
        model = queue.pop(0)
        if model in seen:
            continue
        seen.add(model)
        sections.append(model_section(model, "###"))
        for info in model.model_fields.values():
            queue.extend(nested_models(info.annotation))
    return sections


def render() -> str:
    parts = [HEADER]
    rendered: set[str] = set()
    for kind in KINDS:
        for section in kind_sections(kind):
            title = section.splitlines()[0]
            if title in rendered:  # shared types (Condition, ...) appear under their first kind only
                continue
            rendered.add(title)
            parts.append(section)
    return "\n".join(parts).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if docs/api.md is not up to date")
    args = parser.parse_args()
    content = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != content:
            print(f"{OUTPUT} is stale: run scripts/generate-api-docs.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(content)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
