"""The summary: JSON for humans and the controller, a termination message under 4096 bytes."""

from __future__ import annotations

import json

from memory_operator.api.jobs import ExpirationSummary, RuleSummary
from memory_operator.api.policy import StoreRun
from memory_operator.controller import results


def summary() -> ExpirationSummary:
    s = ExpirationSummary(store="demo", namespace="team", collection="memories", duration_seconds=1.23456)
    s.add_rule(RuleSummary(name="incidents", matched=3, deleted=3))
    s.add_rule(RuleSummary(name="expirationDate", matched=2, deleted=1))
    return s


def test_totals_and_camel_case() -> None:
    data = json.loads(summary().to_json())
    assert data["matched"] == 5 and data["deleted"] == 4
    assert data["dryRun"] is False and data["durationSeconds"] == 1.23456 and data["error"] is None
    assert data["rules"][0] == {"name": "incidents", "matched": 3, "deleted": 3, "ids": []}


def test_to_store_run() -> None:
    run = summary().to_store_run("2025-06-15T03:00:05Z")
    assert run == StoreRun.model_validate(
        {
            "store": "demo",
            "time": "2025-06-15T03:00:05Z",
            "succeeded": True,
            "dryRun": False,
            "matched": 5,
            "deleted": 4,
            "durationSeconds": 1.23456,
            "rules": [
                {"name": "incidents", "matched": 3, "deleted": 3},
                {"name": "expirationDate", "matched": 2, "deleted": 1},
            ],
        }
    )
    failed = ExpirationSummary(store="demo", error="Qdrant is unavailable").to_store_run("T")
    assert failed.succeeded is False and failed.error == "Qdrant is unavailable"


def test_the_controller_reads_the_termination_message_as_the_summary_says() -> None:
    s = summary()
    message = json.loads(s.termination_message())
    assert results.expiration_run("demo", message, True, "T") == s.to_store_run("T").wire()


def test_termination_message_fits_and_keeps_totals() -> None:
    s = ExpirationSummary(store="demo", dry_run=True, error="x" * 5000)
    for i in range(100):
        s.add_rule(RuleSummary(name=f"rule-{i:03d}-" + "a" * 40, matched=i, deleted=0, ids=["id"] * 20))
    text = s.termination_message()
    assert len(text.encode()) <= 4096
    data = json.loads(text)
    assert data["matched"] == sum(range(100)) and data["dryRun"] is True
    assert data["error"].startswith("xxx") and len(data["error"]) <= 512
    assert 0 < len(data["rules"]) < 100 and "ids" not in data["rules"][0]
    assert ExpirationSummary.model_validate(data).matched == s.matched


def test_parsing_ignores_unknown_fields() -> None:
    parsed = ExpirationSummary.model_validate({"store": "demo", "matched": 1, "somethingNew": True})
    assert parsed.matched == 1
