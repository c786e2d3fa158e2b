"""The canary's scenarios: facts to remember and questions that should find them, versioned files.

A version is a directory of `scenarios/`: `facts.json` (each fact an id and a text, stored as one
memory) and `questions.json` (each question an id, a text worded unlike its facts, as an agent would
ask, and the ids of the facts it expects). A scenario never changes once released: a new one is a
new version, so that recall figures of one version compare over time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

DEFAULT_VERSION = "v1"
PACKAGE = "memory_operator.canary"


class ScenarioError(ValueError):
    """A scenario that does not exist or does not hold together."""


@dataclass(frozen=True)
class Fact:
    id: str
    text: str


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    expects: tuple[str, ...]


@dataclass(frozen=True)
class Scenario:
    version: str
    facts: tuple[Fact, ...]
    questions: tuple[Question, ...]

    @property
    def expected(self) -> int:
        """Expected facts over all questions: the denominator of recall."""
        return sum(len(q.expects) for q in self.questions)

    def fact(self, fact_id: str) -> Fact:
        return next(f for f in self.facts if f.id == fact_id)


def versions() -> list[str]:
    """The versions shipped with the project."""
    root = resources.files(PACKAGE).joinpath("scenarios")
    return sorted(entry.name for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith("_"))


def _read(version: str, name: str) -> dict[str, Any]:
    entry = resources.files(PACKAGE).joinpath("scenarios", version, name)
    try:
        data = json.loads(entry.read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = ", ".join(versions())
        raise ScenarioError(f"no canary scenario {version!r} (there are: {known})") from None
    except ValueError as error:
        raise ScenarioError(f"scenario {version}: {name} is not JSON: {error}") from None
    if not isinstance(data, dict) or data.get("version") != version:
        raise ScenarioError(f"scenario {version}: {name} names another version")
    return data


def load(version: str = DEFAULT_VERSION) -> Scenario:
    """The scenario `version`, checked: unique ids, no empty text, every expected fact known."""
    if "/" in version or version.startswith("."):
        raise ScenarioError(f"not a scenario version: {version!r}")
    facts = tuple(Fact(str(f["id"]), str(f["text"])) for f in _read(version, "facts.json")["facts"])
    questions = tuple(
        Question(str(q["id"]), str(q["text"]), tuple(str(e) for e in q["expects"]))
        for q in _read(version, "questions.json")["questions"]
    )
    scenario = Scenario(version, facts, questions)
    check(scenario)
    return scenario


def check(scenario: Scenario) -> None:
    fact_ids = [f.id for f in scenario.facts]
    question_ids = [q.id for q in scenario.questions]
    for kind, ids in (("fact", fact_ids), ("question", question_ids)):
        if len(ids) != len(set(ids)):
            raise ScenarioError(f"scenario {scenario.version}: {kind} ids repeat")
    texts = [f.text.strip() for f in scenario.facts]
    if not all(texts) or len(texts) != len(set(texts)):
        raise ScenarioError(f"scenario {scenario.version}: fact texts must be distinct and not empty")
    for question in scenario.questions:
        unknown = set(question.expects) - set(fact_ids)
        if not question.expects or unknown or not question.text.strip():
            raise ScenarioError(
                f"scenario {scenario.version}: question {question.id} expects no known fact"
                + (f" ({', '.join(sorted(unknown))} unknown)" if unknown else "")
            )
