"""A client's reach as allow-lists of ids and id prefixes, one per scope field (`ScopeRules`).

A memory is within reach when each of its user, agent and run ids is allowed; a field allowed by `*`
admits any value and no value. A request's scope is permitted when every memory it can touch is
within reach: it names an allowed id for each field that is not `*` (a field it leaves out would
let it touch any value there). Both checks are the same rules read two ways, so a permitted scope
never touches a memory outside reach.

Qdrant filters on exact values only: `conditions` narrows a scroll as far as exact ids allow, and
every listing by reach also checks each payload with `contains` (`MemoryService.scroll(..., within=)`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qdrant_client import models as qm

from memory_operator.api.client import ANY, ClientScopes

if TYPE_CHECKING:
    from memory_operator.server.store import Scope

SCOPE_KEYS = ("user_id", "agent_id", "run_id")


@dataclass(frozen=True)
class IdRule:
    """The values of one scope field a client may touch: any (`*`), or these ids and id prefixes."""

    any: bool = False
    ids: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()

    @classmethod
    def of(cls, entries: Iterable[str]) -> IdRule:
        """The rule of validated scope entries (`ClientScopes.problems` is empty)."""
        listed = list(entries)
        if ANY in listed:
            return cls(any=True)
        prefixes = tuple(sorted({e.removesuffix(ANY) for e in listed if e.endswith(ANY)}))
        return cls(ids=frozenset(e for e in listed if not e.endswith(ANY)), prefixes=prefixes)

    def matches(self, value: object) -> bool:
        """Whether a memory with this value (None: none) of the field is allowed."""
        if self.any:
            return True
        if not isinstance(value, str):
            return False
        return value in self.ids or value.startswith(self.prefixes)

    def condition(self, key: str) -> qm.Condition | None:
        """A Qdrant condition every allowed memory meets (exact for ids; the field present for
        prefixes, which `matches` then checks); None for `*`."""
        if self.any:
            return None
        if self.prefixes:
            return qm.Filter(must_not=[qm.IsEmptyCondition(is_empty=qm.PayloadField(key=key))])
        if self.ids:
            return qm.FieldCondition(key=key, match=qm.MatchAny(any=sorted(self.ids)))
        # Nothing is allowed: a value no scope id can have (ids are never empty).
        return qm.FieldCondition(key=key, match=qm.MatchValue(value=""))


@dataclass(frozen=True)
class ScopeRules:
    """A client's reach: a rule per scope field."""

    user_id: IdRule = IdRule()
    agent_id: IdRule = IdRule()
    run_id: IdRule = IdRule()

    @classmethod
    def of(cls, scopes: ClientScopes) -> ScopeRules:
        return cls(IdRule.of(scopes.user_ids), IdRule.of(scopes.agent_ids), IdRule.of(scopes.run_ids))

    def _rules(self) -> tuple[tuple[str, IdRule], ...]:
        return (("user_id", self.user_id), ("agent_id", self.agent_id), ("run_id", self.run_id))

    def permits(self, scope: Scope) -> bool:
        """Whether every memory of the request's scope is within reach."""
        for key, rule in self._rules():
            if rule.any:
                continue
            value = getattr(scope, key)
            if value is None or not rule.matches(value):
                return False
        return True

    def contains(self, payload: Mapping[str, Any]) -> bool:
        return all(rule.matches(payload.get(key)) for key, rule in self._rules())

    def conditions(self) -> list[qm.Condition]:
        return [c for key, rule in self._rules() if (c := rule.condition(key)) is not None]
