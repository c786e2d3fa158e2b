"""Bounds on what one request may ask for, and the checks of free-form input (text, metadata, filters).

Every limit here is documented in docs/security.md and shows in the OpenAPI document (as a schema
bound or in a field's description). The checks walk nested values without recursion and stop at
the first bound they pass, so no input, however deep or wide, costs more than the bound.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, Field, WithJsonSchema

from memory_operator.server.scope_id import InvalidScopeId, check_scope_id

# Characters of a memory's text, a search query or a message (REST and MCP alike).
TEXT_MAX_CHARS = 65_536
# Messages in one mem0-style add: each becomes a memory, embedded one after the other.
MAX_MESSAGES = 32
# Memory ids in one delete, archive or state change.
MAX_MEMORY_IDS = 1_000
# Names (apps, categories) in one request.
MAX_NAMES = 64
NAME_MAX_CHARS = 253
# Metadata: nesting of objects and arrays, entries of one object or array, characters of a key.
# (The body limit bounds the whole; these bound the work of walking it and mem0's copies of it.)
METADATA_MAX_DEPTH = 5
METADATA_MAX_ITEMS = 64
KEY_MAX_CHARS = 128
# Search filters: nesting of AND/OR/NOT, conditions in all (each field and each AND/OR/NOT item
# counts), values of one list (`in`, `nin`, `field: [values]`).
FILTER_MAX_DEPTH = 4
FILTER_MAX_CONDITIONS = 64
FILTER_MAX_LIST = 100

LOGICAL_OPERATORS = ("AND", "OR", "NOT")
COMPARISON_OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "contains", "icontains")
# Scope ids are fields of the request, never filters: a filter on them could only confuse the scope.
SCOPE_FIELDS = frozenset({"user_id", "agent_id", "run_id"})


def is_unicode(text: str) -> bool:
    """Whether the text is valid Unicode: JSON's `\\ud800` escapes decode to lone surrogates that are not."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def unicode_text(text: str) -> str:
    if not is_unicode(text):
        raise ValueError("not valid Unicode (a lone surrogate)")
    return text


def _check_key(key: object) -> None:
    if not isinstance(key, str) or not 1 <= len(key) <= KEY_MAX_CHARS:
        raise ValueError(f"keys must be strings of 1 to {KEY_MAX_CHARS} characters")
    unicode_text(key)


def bounded_json(value: Any) -> Any:
    """Metadata as given if it is within the bounds: depth, entries per container, keys, valid Unicode."""
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, Mapping | list):
            if depth >= METADATA_MAX_DEPTH:
                raise ValueError(f"at most {METADATA_MAX_DEPTH} levels of nesting")
            if len(item) > METADATA_MAX_ITEMS:
                raise ValueError(f"at most {METADATA_MAX_ITEMS} entries in an object or array")
            if isinstance(item, Mapping):
                for key in item:
                    _check_key(key)
                children = list(item.values())
            else:
                children = item
            pending.extend((child, depth + 1) for child in children)
        elif isinstance(item, str):
            unicode_text(item)
    return value


def metadata_json_schema() -> dict[str, Any]:
    """The JSON schema of metadata, bounds included (nesting spelled out level by level)."""
    scalar: dict[str, Any] = {"type": ["string", "number", "boolean", "null"]}
    key_names = {"minLength": 1, "maxLength": KEY_MAX_CHARS}

    def values_inside(depth: int) -> dict[str, Any]:
        # Values of a container at `depth`: scalars, or containers one level deeper while allowed.
        if depth + 1 >= METADATA_MAX_DEPTH:
            return scalar
        inner = values_inside(depth + 1)
        return {
            "anyOf": [
                scalar,
                {
                    "type": "object",
                    "maxProperties": METADATA_MAX_ITEMS,
                    "propertyNames": key_names,
                    "additionalProperties": inner,
                },
                {"type": "array", "maxItems": METADATA_MAX_ITEMS, "items": inner},
            ]
        }

    return {
        "type": "object",
        "maxProperties": METADATA_MAX_ITEMS,
        "propertyNames": key_names,
        "additionalProperties": values_inside(0),
        "description": (
            f"Free-form JSON object: at most {METADATA_MAX_DEPTH} levels of objects and arrays, "
            f"{METADATA_MAX_ITEMS} entries in each, keys of 1 to {KEY_MAX_CHARS} characters."
        ),
    }


def _check_scalar(value: object, where: str, kinds: tuple[type, ...] = (str, int, float, bool)) -> None:
    if value is None or not isinstance(value, kinds):
        names = "/".join(k.__name__ for k in kinds)
        raise ValueError(f"{where}: expected a {names} value")
    if isinstance(value, str):
        unicode_text(value)


def _check_condition(field: str, condition: object) -> None:
    """Check one field's condition."""
    if field in SCOPE_FIELDS:
        raise ValueError(f"{field} is a field of the request, not a filter")
    if field.startswith("$"):
        raise ValueError("field names may not start with $")
    if isinstance(condition, list):
        _check_list(condition, field)
        return
    if not isinstance(condition, Mapping):
        _check_scalar(condition, field, (str, int, bool))
        return
    if not condition:
        raise ValueError(f"{field}: an operator is required")
    for operator, operand in condition.items():
        where = f"{field}.{operator}" if isinstance(operator, str) and len(operator) < 16 else field
        if operator not in COMPARISON_OPERATORS:
            raise ValueError(f"{where}: unknown operator; use one of {', '.join(COMPARISON_OPERATORS)}")
        if operator in ("in", "nin"):
            _check_list(operand, where)
        elif operator in ("contains", "icontains"):
            _check_scalar(operand, where, (str,))
        elif operator in ("eq", "ne"):
            _check_scalar(operand, where, (str, int, bool))
        else:
            _check_scalar(operand, where, (str, int, float))


def _check_list(values: object, where: str) -> None:
    if not isinstance(values, list) or not 1 <= len(values) <= FILTER_MAX_LIST:
        raise ValueError(f"{where}: expected a list of 1 to {FILTER_MAX_LIST} values")
    for value in values:
        _check_scalar(value, where, (str, int))


def search_filters(filters: Mapping[str, Any]) -> Mapping[str, Any]:
    """mem0's metadata filters as given, if well-formed and within the bounds.

    The grammar (mem0's, narrowed to what its Qdrant store handles): an object of conditions, each
    `field: value`, `field: [values]` or `field: {operator: operand, ...}`, or a logical operator
    (`AND`, `OR`, `NOT`) over a non-empty list of such objects.
    """
    pending: list[tuple[Any, int]] = [(filters, 1)]
    conditions = 0
    while pending:
        item, depth = pending.pop()
        if not isinstance(item, Mapping):
            raise ValueError("each item of AND, OR and NOT must be an object of conditions")
        for key, value in item.items():
            conditions += 1
            if conditions > FILTER_MAX_CONDITIONS:
                raise ValueError(f"at most {FILTER_MAX_CONDITIONS} conditions in all")
            _check_key(key)
            if key in LOGICAL_OPERATORS:
                if depth >= FILTER_MAX_DEPTH:
                    raise ValueError(f"at most {FILTER_MAX_DEPTH} levels of AND/OR/NOT")
                if not isinstance(value, list) or not value:
                    raise ValueError(f"{key} takes a non-empty list of objects")
                conditions += len(value)
                if conditions > FILTER_MAX_CONDITIONS:
                    raise ValueError(f"at most {FILTER_MAX_CONDITIONS} conditions in all")
                pending.extend((sub, depth + 1) for sub in value)
            else:
                _check_condition(key, value)
    return filters


def scope_in_filters(filters: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The scope ids a mem0 client puts in its filters, and the filters left.

    mem0's newer clients scope a search or listing inside `filters` (`{"user_id": "alice"}`, or the
    platform's `{"AND": [{"user_id": "alice"}, {...}]}`). Scope ids are taken from the top level of
    the filters and from the items of a top-level AND that hold nothing else, as `id` or
    `{"eq": id}`; the platform's `app_id` becomes the `app` filter. Anywhere else (under OR or NOT,
    with another operator) a scope id stays in the filters and is refused there: an OR of scopes
    would reach beyond one scope. The ids taken are not checked here (the scope id grammar is).
    """
    ids: dict[str, Any] = {}

    def taken(key: object, condition: object) -> bool:
        if key not in SCOPE_FIELDS:
            return False
        value = (
            condition.get("eq") if isinstance(condition, Mapping) and list(condition) == ["eq"] else condition
        )
        if not isinstance(value, str):
            return False
        if key in ids and ids[key] != value:
            raise ValueError(f"{key} is given twice, with different values")
        ids[str(key)] = value
        return True

    rest: dict[str, Any] = {}
    for key, value in filters.items():
        if taken(key, value):
            continue
        if key == "AND" and isinstance(value, list):
            kept = [
                item
                for item in value
                if not (isinstance(item, Mapping) and len(item) == 1 and taken(*next(iter(item.items()))))
            ]
            if kept:
                rest["AND"] = kept
        elif key == "app_id":
            rest["app"] = value
        else:
            rest[key] = value
    return ids, rest


def scoped_filters(filters: Mapping[str, Any]) -> Mapping[str, Any]:
    """Filters that may carry the scope: the scope ids follow the scope id grammar, the rest
    mem0's filter grammar and its bounds."""
    ids, rest = scope_in_filters(filters)
    for key, value in ids.items():
        try:
            check_scope_id(key, value)
        except InvalidScopeId as error:
            raise ValueError(str(error)) from None
    search_filters(rest)
    return filters


UnicodeText = Annotated[str, AfterValidator(unicode_text)]
Text = Annotated[UnicodeText, Field(min_length=1, max_length=TEXT_MAX_CHARS)]
Name = Annotated[UnicodeText, Field(min_length=1, max_length=NAME_MAX_CHARS)]
Metadata = Annotated[dict[str, Any], AfterValidator(bounded_json), WithJsonSchema(metadata_json_schema())]
Filters = Annotated[
    dict[str, Any],
    AfterValidator(search_filters),
    Field(
        description=(
            "mem0 metadata filters: `field: value`, `field: [values]`, "
            f"`field: {{operator: operand}}` with operators {', '.join(COMPARISON_OPERATORS)}, "
            f"or AND/OR/NOT over a list of such objects; at most {FILTER_MAX_DEPTH} levels, "
            f"{FILTER_MAX_CONDITIONS} conditions in all, {FILTER_MAX_LIST} values per list. "
            "Scope ids are request fields, not filters."
        )
    ),
]
ScopedFilters = Annotated[
    dict[str, Any],
    AfterValidator(scoped_filters),
    Field(
        description=(
            "mem0 metadata filters that may also hold the scope: `user_id`, `agent_id`, `run_id` at "
            'the top level or as items of a top-level AND (`{"AND": [{"user_id": "alice"}]}`), '
            'each a scope id or `{"eq": id}`; `app_id` filters by app. The other conditions as in '
            "`filters` of `/search`; a scope id anywhere else (under OR, NOT) is refused."
        )
    ),
]
