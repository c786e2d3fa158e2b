"""Qdrant's REST API as qdrant-client's generated code declares it: every operation's method, path, query
parameters, body model and answer model, read from `qdrant_client/http/api/*.py` (generated from
Qdrant's OpenAPI document).

The fake Qdrant serves only these operations, and checks every request against them (path, query
parameters, JSON body by its model) and every JSON answer against the model qdrant-client parses it
with, keys included: a fake that drifted from Qdrant fails the tests that use it.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
import qdrant_client.http.api
from qdrant_client.http import models

API_DIR = Path(qdrant_client.http.api.__file__).parent


@dataclass(frozen=True)
class Operation:
    """One REST operation of Qdrant."""

    name: str
    """qdrant-client's name for it, e.g. `create_collection`."""
    method: str
    path: str
    """Template, e.g. `/collections/{collection_name}`."""
    query: frozenset[str]
    body: str | None
    """Name of the JSON body's model in `qdrant_client.http.models`; `None` without a JSON body."""
    multipart: frozenset[str]
    """Names of the multipart file fields."""
    answer: str
    """Name of the answer's model, or `str`, `file`, `object`."""

    @functools.cached_property
    def pattern(self) -> re.Pattern[str]:
        parts = re.split(r"(\{[a-z_]+\})", self.path)
        regex = "".join(f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts)
        return re.compile(f"^{regex}$")


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _model_name(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Attribute):  # m.CreateCollection
        return node.attr
    if isinstance(node, ast.Name):  # str, file, object
        return node.id
    return None


def _operation(function: ast.FunctionDef) -> Operation | None:
    query: set[str] = set()
    multipart: set[str] = set()
    body_argument: str | None = None
    request: ast.Call | None = None
    for node in ast.walk(function):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if (
                isinstance(target, ast.Subscript)
                and isinstance(target.value, ast.Name)
                and isinstance(target.slice, ast.Constant)
            ):
                if target.value.id == "query_params":
                    query.add(str(target.slice.value))
                elif target.value.id == "files":
                    multipart.add(str(target.slice.value))
            if (
                isinstance(target, ast.Name)
                and target.id == "body"
                and isinstance(node.value, ast.Call)
                and isinstance(node.value.args[0], ast.Name)
            ):
                body_argument = node.value.args[0].id
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "request"
        ):
            request = node
    if request is None:
        return None
    method, path = _keyword(request, "method"), _keyword(request, "url")
    if not (isinstance(method, ast.Constant) and isinstance(path, ast.Constant)):
        return None
    body = None
    if body_argument is not None:
        annotation = next(a.annotation for a in function.args.args if a.arg == body_argument)
        body = _model_name(annotation)
    return Operation(
        name=function.name.removeprefix("_build_for_"),
        method=str(method.value),
        path=str(path.value),
        query=frozenset(query),
        body=body,
        multipart=frozenset(multipart),
        answer=_model_name(_keyword(request, "type_")) or "object",
    )


@functools.cache
def operations() -> tuple[Operation, ...]:
    found: dict[tuple[str, str], Operation] = {}
    for module in sorted(API_DIR.glob("*_api.py")):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("_build_for_"):
                operation = _operation(node)
                if operation is not None:
                    found[(operation.method, operation.path)] = operation
    # Literal paths before templated ones: `/snapshots/upload` is not a snapshot named `upload`.
    return tuple(sorted(found.values(), key=lambda o: (o.path.count("{"), -len(o.path))))


def match(method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
    for operation in operations():
        if operation.method == method:
            found = operation.pattern.match(path)
            if found:
                return operation, found.groupdict()
    return None


def _adapter(name: str) -> pydantic.TypeAdapter[Any]:
    return pydantic.TypeAdapter(getattr(models, name))


def unknown_keys(value: Any, raw: Any, where: str = "$") -> list[str]:
    """Keys of `raw` that the model `value` was parsed into has no field for (pydantic drops them
    silently on qdrant-client's answer models)."""
    problems: list[str] = []
    if isinstance(value, pydantic.BaseModel) and isinstance(raw, dict):
        fields = type(value).model_fields
        by_wire = {(f.alias or n): n for n, f in fields.items()}
        for key, item in raw.items():
            if key not in by_wire:
                problems.append(f"{where}.{key}")
                continue
            problems += unknown_keys(getattr(value, by_wire[key]), item, f"{where}.{key}")
    elif isinstance(value, list) and isinstance(raw, list):
        for index, (item, raw_item) in enumerate(zip(value, raw, strict=False)):
            problems += unknown_keys(item, raw_item, f"{where}[{index}]")
    elif isinstance(value, dict) and isinstance(raw, dict):
        for key, item in value.items():
            problems += unknown_keys(item, raw.get(key), f"{where}.{key}")
    return problems


def check_body(operation: Operation, body: bytes) -> list[str]:
    """Problems of a JSON request body against the operation's model (which forbids unknown keys)."""
    if operation.body is None:
        return [f"{operation.name} takes no JSON body"] if body.strip() else []
    try:
        _adapter(operation.body).validate_json(body)
    except pydantic.ValidationError as error:
        return [f"{operation.name} body is not a {operation.body}: {error}"]
    return []


def check_answer(operation: Operation, status: int, answer: Any) -> list[str]:
    """Problems of a JSON answer: a success against the operation's model, an error against
    `ErrorResponse`; unknown keys count."""
    name = operation.answer if 200 <= status < 300 else "ErrorResponse"
    if name in ("file", "object"):
        return []
    if name == "str":
        return [] if isinstance(answer, str) else [f"{operation.name} answer is not text"]
    try:
        parsed = _adapter(name).validate_python(answer)
    except pydantic.ValidationError as error:
        return [f"{operation.name} answer is not a {name}: {error}"]
    return [f"{operation.name} answer has keys {name} does not: {k}" for k in unknown_keys(parsed, answer)]
