"""The chart's alert rules, evaluated by Prometheus's own `promtool test rules` on made-up series.

promtool comes from scripts/install-promtool.sh (scripts/setup.sh runs it); without it these tests
fail, as the other install tests do without helm.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from install.helpers import CHART, kinds, render, run, tool

MONITORING = ("-f", str(CHART / "ci" / "monitoring-values.yaml"))
# backupMaxAgeHours of the chart's defaults: 26 hours.
MAX_AGE = 26 * 3600
HOUR = 3600


def rule_groups() -> list[dict[str, Any]]:
    (rule,) = kinds(render(*MONITORING), "PrometheusRule")
    return list(rule["spec"]["groups"])


def without_annotations(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rules with no annotations: the tests compare labels (annotations are checked separately by
    `promtool check rules`, which parses their templates)."""
    return [
        {**g, "rules": [{k: v for k, v in r.items() if k != "annotations"} for r in g["rules"]]}
        for g in groups
    ]


def series(name: str, values: str, **labels: str) -> dict[str, str]:
    selector = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    return {"series": f"{name}{{{selector}}}", "values": values}


def minutes(hours: float) -> int:
    return int(hours * 60)


def constant(value: float, hours: float) -> str:
    """`value` every minute for `hours` (promtool's `a+bxn` gives n+1 samples)."""
    return f"{value:g}+0x{minutes(hours) - 1}"


def missing(hours: float) -> str:
    """No sample for `hours`: the series is not scraped."""
    return f"_x{minutes(hours)}"


def promtool_test(tmp_path: Path, rules: list[dict[str, Any]], tests: list[dict[str, Any]]) -> None:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": rules}))
    test_file = tmp_path / "test.yaml"
    test_file.write_text(
        yaml.safe_dump({"rule_files": [rules_file.name], "evaluation_interval": "1m", "tests": tests})
    )
    result = run([tool("promtool"), "test", "rules", test_file], check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def alerts(name: str, at: str, *labels: dict[str, str]) -> dict[str, Any]:
    return {
        "eval_time": at,
        "alertname": name,
        "exp_alerts": [{"exp_labels": {**lab, "severity": "warning"}} for lab in labels],
    }


SCHEDULED = "memory_operator_backup_scheduled_since_timestamp_seconds"
SUCCESS = "memory_operator_backup_last_success_timestamp_seconds"
RECONCILES = "memory_operator_reconciles_total"
OPERATOR = {"job": "memory-operator-metrics", "instance": "10.0.0.1:9090"}


def store(name: str) -> dict[str, str]:
    return {"namespace": "agents", "store": name}


def test_the_rules_and_their_templates_are_valid(tmp_path: Path) -> None:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": rule_groups()}))
    result = run([tool("promtool"), "check", "rules", rules_file], check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 11 rules found" in result.stdout


def test_backup_missing_fires_for_a_store_that_never_had_a_successful_backup(tmp_path: Path) -> None:
    hours = 30
    promtool_test(
        tmp_path,
        without_annotations(rule_groups()),
        [
            {
                "interval": "1m",
                "input_series": [
                    # scheduled since the start (t=0), never a success
                    series(SCHEDULED, constant(0, hours), **OPERATOR, **store("never")),
                    # scheduled 20 hours in: too young to alert
                    series(SCHEDULED, constant(20 * HOUR, hours), **OPERATOR, **store("young")),
                    # a success at 1 hour, none since
                    series(SCHEDULED, constant(0, hours), **OPERATOR, **store("stale")),
                    series(SUCCESS, constant(HOUR, hours), **OPERATOR, **store("stale")),
                    # successes at 1 hour, then at 25 hours
                    series(SCHEDULED, constant(0, hours), **OPERATOR, **store("fresh")),
                    series(
                        SUCCESS,
                        f"{constant(HOUR, 25)} {constant(25 * HOUR, hours - 25)}",
                        **OPERATOR,
                        **store("fresh"),
                    ),
                    # backups no longer scheduled: an old success alone never alerts
                    series(SUCCESS, constant(HOUR, hours), **OPERATOR, **store("unscheduled")),
                ],
                "alert_rule_test": [
                    alerts("MemoryStoreBackupMissing", "25h"),
                    # 26 hours without a success, then the rule's 10 minutes
                    alerts("MemoryStoreBackupMissing", "26h5m"),
                    alerts("MemoryStoreBackupMissing", "26h15m", store("never")),
                    alerts("MemoryStoreBackupMissing", "28h", store("never"), store("stale")),
                ],
            }
        ],
    )


def test_backup_missing_fires_after_an_operator_restart(tmp_path: Path) -> None:
    """The operator restarts at 10 hours and is scraped again from 11 hours, with its gauges restored
    from the stores' status: the alert still fires on time, and the gap starts no alert of its own."""
    gap = f"{constant(HOUR, 10)} {missing(1)} {constant(HOUR, 19)}"
    promtool_test(
        tmp_path,
        without_annotations(rule_groups()),
        [
            {
                "interval": "1m",
                "input_series": [
                    series(
                        SCHEDULED,
                        f"{constant(0, 10)} {missing(1)} {constant(0, 19)}",
                        **OPERATOR,
                        **store("s"),
                    ),
                    series(SUCCESS, gap, **{**OPERATOR, "instance": "10.0.0.1:9090"}, **store("s")),
                ],
                "alert_rule_test": [
                    alerts("MemoryStoreBackupMissing", "10h30m"),
                    # the success at 1 hour is 26 hours old at 27 hours, then the rule's 10 minutes
                    alerts("MemoryStoreBackupMissing", "27h5m"),
                    alerts("MemoryStoreBackupMissing", "27h15m", store("s")),
                ],
            }
        ],
    )


@pytest.mark.parametrize("result", ["paused", "invalid", "gone", "success"])
def test_reconcile_errors_ignore_answers_that_are_not_errors(tmp_path: Path, result: str) -> None:
    promtool_test(
        tmp_path,
        without_annotations(rule_groups()),
        [
            {
                "interval": "1m",
                "input_series": [series(RECONCILES, "0+5x120", **OPERATOR, result=result)],
                "alert_rule_test": [alerts("MemoryOperatorReconcileErrors", "90m")],
            }
        ],
    )


def test_reconcile_errors_fire_on_errors(tmp_path: Path) -> None:
    promtool_test(
        tmp_path,
        without_annotations(rule_groups()),
        [
            {
                "interval": "1m",
                "input_series": [
                    series(RECONCILES, "0+5x120", **OPERATOR, result="paused"),
                    series(RECONCILES, "0+1x120", **OPERATOR, result="error"),
                ],
                "alert_rule_test": [
                    alerts("MemoryOperatorReconcileErrors", "10m"),
                    {
                        "eval_time": "90m",
                        "alertname": "MemoryOperatorReconcileErrors",
                        "exp_alerts": [{"exp_labels": {"severity": "warning"}}],
                    },
                ],
            }
        ],
    )


RECALL = "memory_operator_canary_recall"
RECALL_THRESHOLD = "memory_operator_canary_recall_threshold"
LATENCY = "memory_operator_canary_latency_seconds"
LATENCY_BOUND = "memory_operator_canary_latency_p95_bound_seconds"


def test_canary_recall_low_fires_below_each_stores_own_threshold(tmp_path: Path) -> None:
    hours = 2
    promtool_test(
        tmp_path,
        without_annotations(rule_groups()),
        [
            {
                "interval": "1m",
                "input_series": [
                    # recall 1.0 for an hour, then a run finds 80% of the facts
                    series(RECALL, f"{constant(1, 1)} {constant(0.8, 1)}", **OPERATOR, **store("dropping")),
                    series(RECALL_THRESHOLD, constant(0.95, hours), **OPERATOR, **store("dropping")),
                    # exactly at the default threshold: not below it
                    series(RECALL, constant(0.95, hours), **OPERATOR, **store("edge")),
                    series(RECALL_THRESHOLD, constant(0.95, hours), **OPERATOR, **store("edge")),
                    # a store that accepts 0.75 with 0.8
                    series(RECALL, constant(0.8, hours), **OPERATOR, **store("lenient")),
                    series(RECALL_THRESHOLD, constant(0.75, hours), **OPERATOR, **store("lenient")),
                    # a store that demands 1.0 with 0.97
                    series(RECALL, constant(0.97, hours), **OPERATOR, **store("strict")),
                    series(RECALL_THRESHOLD, constant(1, hours), **OPERATOR, **store("strict")),
                ],
                "alert_rule_test": [
                    alerts("MemoryStoreCanaryRecallLow", "4m"),
                    alerts("MemoryStoreCanaryRecallLow", "50m", store("strict")),
                    # the drop at 1 hour, then the rule's 5 minutes
                    alerts("MemoryStoreCanaryRecallLow", "1h3m", store("strict")),
                    alerts("MemoryStoreCanaryRecallLow", "1h10m", store("dropping"), store("strict")),
                ],
            }
        ],
    )


def test_canary_latency_high_fires_above_each_stores_bound(tmp_path: Path) -> None:
    hours = 1
    promtool_test(
        tmp_path,
        without_annotations(rule_groups()),
        [
            {
                "interval": "1m",
                "input_series": [
                    series(LATENCY, constant(2.5, hours), **OPERATOR, **store("slow"), quantile="0.95"),
                    series(LATENCY, constant(0.1, hours), **OPERATOR, **store("slow"), quantile="0.5"),
                    series(LATENCY_BOUND, constant(2, hours), **OPERATOR, **store("slow")),
                    # slow median, fast enough p95 for its bound: the median never alerts
                    series(LATENCY, constant(0.4, hours), **OPERATOR, **store("fine"), quantile="0.95"),
                    series(LATENCY, constant(3, hours), **OPERATOR, **store("fine"), quantile="0.5"),
                    series(LATENCY_BOUND, constant(0.5, hours), **OPERATOR, **store("fine")),
                ],
                "alert_rule_test": [
                    alerts("MemoryStoreCanaryLatencyHigh", "3m"),
                    alerts("MemoryStoreCanaryLatencyHigh", "10m", store("slow")),
                ],
            }
        ],
    )
