"""The one grammar of a scope id (`user_id`, `agent_id`, `run_id`) and of an MCP client name.

Every route takes scope ids through this grammar, whether they come in a JSON body, a query string
or the MCP path, and the value it accepts is the value handed to mem0 and compared with Qdrant's.

Why so narrow: mem0 trims surrounding whitespace from an id (`str.strip`, which also removes
control characters such as U+001C..U+001F that no pattern of "non-space" excludes), and its Qdrant
store reads the value `*` as "any value", dropping the condition. An id that a lower layer changes
or reads as a pattern would let a request for one id reach another id's memories, so only ids
that every layer takes literally are accepted: ASCII letters and digits, and `_ . : @ + | -`
after the first character. Ids are compared exactly (case-sensitive).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field

SCOPE_ID_MAX_LENGTH = 253
SCOPE_ID_CHARACTERS = "A-Za-z0-9_.:@+|-"
# `$` in pydantic's (Rust) regex engine matches only at the very end; `fullmatch` below does the
# same in Python, where `$` would also accept a trailing newline.
SCOPE_ID_PATTERN = rf"^[A-Za-z0-9_][{SCOPE_ID_CHARACTERS}]{{0,{SCOPE_ID_MAX_LENGTH - 1}}}$"
SCOPE_ID_RULE = (
    f"1 to {SCOPE_ID_MAX_LENGTH} ASCII characters: letters, digits and `_ . : @ + | -`, "
    "starting with a letter, a digit or `_`; compared exactly"
)
_SCOPE_ID = re.compile(SCOPE_ID_PATTERN.removeprefix("^").removesuffix("$"))

ScopeId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=SCOPE_ID_MAX_LENGTH,
        pattern=SCOPE_ID_PATTERN,
        description=f"A scope id: {SCOPE_ID_RULE}.",
    ),
]


class InvalidScopeId(ValueError):
    """A value that is not a scope id; names the field, never repeats the value."""

    def __init__(self, field: str) -> None:
        super().__init__(f"{field} must be {SCOPE_ID_RULE}")
        self.field = field


def is_scope_id(value: object) -> bool:
    return isinstance(value, str) and _SCOPE_ID.fullmatch(value) is not None


def check_scope_id(field: str, value: object) -> str:
    """The value itself if it is a scope id; InvalidScopeId naming `field` otherwise."""
    if not is_scope_id(value):
        raise InvalidScopeId(field)
    assert isinstance(value, str)
    return value
