"""Filing memories under the configured categories with the language model.

mem0's open-source library has no categorisation of its own (its `custom_categories` belong to the
hosted platform), so the server asks mem0's configured language model itself, through mem0's LLM
client (`memory.llm.generate_response`, JSON mode): whatever provider the store configures answers.
The prompt lists every configured category with its description; the answer is kept only where it
names configured categories. A failed or unusable answer files the memory under no category: the
memory is stored all the same.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("memory_operator.server.categorize")

PROMPT_HEADER = "You file memories under categories."
PROMPT = """{header} These are the categories, one per line as `name: what belongs in it`:

{categories}

The user's message is one memory. Answer with a JSON object `{{"categories": [...]}}` listing the name
of every category above that the memory belongs to, and no other name; an empty list if it fits none."""
# Answers longer than this are not read (a model that rambles gives no categories).
ANSWER_MAX_CHARS = 16_384


class LanguageModel(Protocol):
    """mem0's LLM client (`mem0.llms.base.LLMBase`), as far as it is used here."""

    def generate_response(self, messages: list[dict[str, str]], **kwargs: Any) -> Any: ...


def prompt(categories: Sequence[tuple[str, str | None]]) -> str:
    lines = "\n".join(f"- {name}: {description or name}" for name, description in categories)
    return PROMPT.format(header=PROMPT_HEADER, categories=lines)


def categories_in(answer: object, names: Sequence[str]) -> list[str]:
    """The configured categories a model's answer names (case-insensitive), in configured order."""
    if not isinstance(answer, str) or len(answer) > ANSWER_MAX_CHARS:
        return []
    text = re.sub(r"^```(?:json)?|```$", "", answer.strip()).strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        return []
    chosen = parsed.get("categories") if isinstance(parsed, dict) else None
    if not isinstance(chosen, list):
        return []
    wanted = {c.strip().casefold() for c in chosen if isinstance(c, str)}
    return [name for name in names if name.casefold() in wanted]


@dataclass(frozen=True)
class Categorizer:
    """Classifies one memory's text against the configured categories."""

    llm: LanguageModel
    categories: tuple[tuple[str, str | None], ...]

    def __call__(self, text: str) -> list[str]:
        if not self.categories:
            return []
        messages = [
            {"role": "system", "content": prompt(self.categories)},
            {"role": "user", "content": text},
        ]
        answer = self.llm.generate_response(messages=messages, response_format={"type": "json_object"})
        return categories_in(answer, [name for name, _ in self.categories])
