"""The server's YAML config file: custom categories, custom instructions, default expiration by category.

```yaml
categories:                 # names, or objects with a description and their own default expiration
  - incident
  - {name: runbook, description: How to operate a service, expiration: never}
customInstructions: Only keep facts about services and incidents.
defaultExpiration:          # overrides and additions to the built-in defaults
  incident: 90d
  temporary: 7d
  permanent: never
```

Expiration is counted in whole days because mem0 stores `expiration_date` as a `YYYY-MM-DD` date.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

NEVER = "never"
# A day count with a unit (days or weeks), or `never`. Hours are refused: the expiration is a date.
EXPIRATION_PATTERN = r"^([1-9][0-9]*[dw]|never)$"
Expiration = Annotated[str, Field(pattern=EXPIRATION_PATTERN)]

DEFAULT_EXPIRATION: dict[str, str] = {"incident": "90d", "temporary": "7d", "permanent": NEVER}
# What the built-in categories mean, for the language model that files memories under them.
DEFAULT_DESCRIPTIONS: dict[str, str] = {
    "incident": "Something that went wrong: an outage, a failure, an error, and what was done about it",
    "temporary": "A fact that holds only for a short while: a freeze, a current task, a deadline soon",
    "permanent": "A fact to keep for good: a lasting rule, an identity, a long-term decision",
}


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Category(_Model):
    """A custom category of memories."""

    name: str = Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str | None = None
    expiration: Expiration | None = None


class ServerConfig(_Model):
    """Everything the config file can set; an absent file means these defaults."""

    categories: list[Category] = Field(default_factory=list)
    custom_instructions: str | None = None
    default_expiration: dict[str, Expiration] = Field(default_factory=dict)

    @field_validator("categories", mode="before")
    @classmethod
    def _names_are_categories(cls, value: object) -> object:
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    def expirations(self) -> dict[str, str]:
        """Default expiration of each category: built-in, then the config's table, then per category."""
        table = {**DEFAULT_EXPIRATION, **self.default_expiration}
        table.update({c.name: c.expiration for c in self.categories if c.expiration is not None})
        return table

    def category_names(self) -> list[str]:
        """Every category the server knows of: the custom ones and those with a default expiration."""
        names = [c.name for c in self.categories]
        return names + [name for name in self.expirations() if name not in names]

    def described_categories(self) -> list[tuple[str, str | None]]:
        """Every category with what it means: its configured description, else the built-in one."""
        described = {c.name: c.description for c in self.categories if c.description}
        return [
            (name, described.get(name) or DEFAULT_DESCRIPTIONS.get(name)) for name in self.category_names()
        ]


def load_config(path: Path | None) -> ServerConfig:
    """Read the config file; no path means the defaults. Errors name the file and the field."""
    if path is None:
        return ServerConfig()
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return ServerConfig.model_validate(data)


def expiration_days(expiration: str) -> int | None:
    """Days an expiration stands for; None for `never`."""
    if expiration == NEVER:
        return None
    match = re.fullmatch(r"([1-9][0-9]*)([dw])", expiration)
    if match is None:
        raise ValueError(f"invalid expiration {expiration!r}")
    return int(match.group(1)) * (7 if match.group(2) == "w" else 1)


def default_expiration_date(
    categories: Iterable[str], expirations: Mapping[str, str], today: dt.date
) -> dt.date | None:
    """The expiration date a new memory gets from its categories.

    A category that never expires wins (a memory marked permanent is kept whatever else it is);
    otherwise the shortest default applies; categories without a default do not count.
    """
    days: list[int] = []
    for category in categories:
        expiration = expirations.get(category)
        if expiration is None:
            continue
        count = expiration_days(expiration)
        if count is None:
            return None
        days.append(count)
    return today + dt.timedelta(days=min(days)) if days else None
