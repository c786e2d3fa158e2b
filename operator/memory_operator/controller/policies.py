"""A MemoryPolicy's status. Two kinds of writer, each with its own field manager: the policy's
reconcile owns `matchedStores`, `observedGeneration` and the conditions; the result of each store's
expiration run is its own `lastRuns` entry (a list keyed by store), written by that store's manager."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from memory_operator.api.common import Condition
from memory_operator.api.policy import MemoryPolicy
from memory_operator.controller import results, status
from memory_operator.controller.decide import Event

# A field manager per store for its `lastRuns` entry: concurrent runs on two stores lose nothing.
RUN_MANAGER_PREFIX = "memory-operator-run-"


def run_manager(store: str) -> str:
    return RUN_MANAGER_PREFIX + store


def matched_stores(policy: MemoryPolicy, stores: Sequence[Mapping[str, Any]]) -> list[str]:
    return sorted(
        s["metadata"]["name"]
        for s in stores
        if not s["metadata"].get("deletionTimestamp")
        and policy.spec.selector.matches(s["metadata"].get("labels") or {})
    )


def policy_status(
    body: Mapping[str, Any], stores: Sequence[Mapping[str, Any]], now: str
) -> dict[str, Any] | None:
    """The fields the policy's reconcile owns (wire form); `None` for a policy that does not parse."""
    try:
        policy = MemoryPolicy.model_validate(body)
    except ValidationError:
        return None
    generation = body["metadata"].get("generation")
    matched = matched_stores(policy, stores)
    previous = policy.status.conditions if policy.status else []
    suspended = " (suspended)" if policy.spec.suspend else ""
    updates: list[Condition] = [
        status.condition("Ready", True, "Applied", f"selects {len(matched)} store(s){suspended}", generation)
    ]
    runs = [r for r in (policy.status.last_runs if policy.status else []) if r.store in matched]
    if runs:
        failed = [r.store for r in runs if not r.succeeded]
        message = (
            "the last run failed on " + ", ".join(failed)
            if failed
            else "the last run on every store succeeded"
        )
        reason = "RunFailed" if failed else "Succeeded"
        updates.append(status.condition("LastRunSucceeded", not failed, reason, message, generation))
    conditions = status.set_conditions(previous, updates, now)
    return {
        "matchedStores": matched,
        "observedGeneration": generation,
        "conditions": [c.model_dump(by_alias=True, exclude_none=True, mode="json") for c in conditions],
    }


def owned_part(current: Mapping[str, Any]) -> dict[str, Any]:
    return {key: current.get(key) for key in ("matchedStores", "observedGeneration", "conditions")}


@dataclass(frozen=True)
class RunRecord:
    run: dict[str, Any]
    """The `lastRuns` entry (wire form)."""
    events: list[Event]


def run_record(
    policy: Mapping[str, Any],
    store: Mapping[str, Any] | None,
    job: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    store_name: str,
    now: str,
) -> RunRecord | None:
    """The run of a finished expiration Job, unless the policy already shows it or a newer run."""
    finished = results.job_finished(job)
    if finished is None:
        return None
    when = results.finish_time(job, now)
    run = results.expiration_run(store_name, results.termination_message(pods), finished, when)
    run["job"] = job["metadata"]["name"]
    current = next(
        (r for r in (policy.get("status") or {}).get("lastRuns") or [] if r.get("store") == store_name), None
    )
    # Runs are ordered by their end, then by Job name (two may end within the same second).
    if current is not None and (str(current.get("time") or ""), str(current.get("job") or "")) >= (
        when,
        run["job"],
    ):
        return None
    events = []
    if not run["succeeded"]:
        policy_name = policy["metadata"]["name"]
        message = f"expiration on store {store_name} failed: {run.get('error')}"
        events.append(Event(policy, "ExpirationFailed", message))
        if store is not None:
            events.append(
                Event(store, "ExpirationFailed", f"policy {policy_name} failed at {when}: {run.get('error')}")
            )
    return RunRecord(run, events)
