"""The MemoryClient alerts, evaluated by promtool: sustained denials (403) or throttles (429) of one
client alert, a short burst or a trickle does not, and each client is judged on its own requests."""

from __future__ import annotations

import json
import re
from pathlib import Path

from install.helpers import kinds, render
from install.test_alerts import (
    MONITORING,
    alerts,
    constant,
    promtool_test,
    rule_groups,
    series,
    without_annotations,
)

REQUESTS = "memory_server_client_requests_total"
DENIALS = "memory_server_client_denials_total"
THROTTLES = "memory_server_client_throttles_total"
POD = {"job": "memory-server", "namespace": "agents", "pod": "mem-server-0"}


def rate(per_minute: float, minutes: int) -> str:
    """A counter growing by `per_minute` every minute for `minutes`."""
    return f"0+{per_minute:g}x{minutes}"


def client(name: str) -> dict[str, str]:
    return {"namespace": "agents", "client": name}


def test_a_client_refused_a_tenth_of_its_requests_for_15_minutes_alerts(tmp_path: Path) -> None:
    minutes = 40
    promtool_test(
        tmp_path,
        without_annotations(rule_groups()),
        [
            {
                "interval": "1m",
                "input_series": [
                    # outside its scopes half the time, all along
                    series(REQUESTS, rate(60, minutes), client="lost", **POD, status="200"),
                    series(REQUESTS, rate(60, minutes), client="lost", **POD, status="403"),
                    series(DENIALS, rate(60, minutes), client="lost", **POD),
                    # one denial in a hundred: a trickle
                    series(REQUESTS, rate(100, minutes), client="fine", **POD, status="200"),
                    series(DENIALS, rate(1, minutes), client="fine", **POD),
                    # over its rate a third of the time, by its write rate
                    series(REQUESTS, rate(60, minutes), client="fast", **POD, status="200"),
                    series(REQUESTS, rate(30, minutes), client="fast", **POD, status="429"),
                    series(THROTTLES, rate(30, minutes), client="fast", **POD, limit="writes"),
                    # throttled for 5 minutes only, then calm
                    series(REQUESTS, rate(60, minutes), client="burst", **POD, status="200"),
                    series(
                        THROTTLES,
                        f"{rate(60, 5)} {constant(300, minutes - 5)}",
                        client="burst",
                        **POD,
                        limit="requests",
                    ),
                ],
                "alert_rule_test": [
                    alerts("MemoryClientDenied", "10m"),
                    alerts("MemoryClientDenied", "30m", client("lost")),
                    alerts("MemoryClientThrottled", "30m", client("fast")),
                ],
            }
        ],
    )


def test_the_dashboard_and_the_alerts_read_metrics_the_server_exports() -> None:
    from memory_operator.server.metrics import ServerMetrics

    exported = {f.name for f in ServerMetrics().registry.collect()}
    (config_map,) = kinds(render(*MONITORING), "ConfigMap")
    dashboard = json.loads(config_map["data"]["memory-operator.json"])
    panels = {p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in dashboard["panels"]}
    shown = (
        panels["Client requests per second"] + panels["Client denials (403) and throttles (429) per second"]
    )
    rules = {r.get("alert"): r["expr"] for g in rule_groups() for r in g["rules"]}
    alerted = rules["MemoryClientDenied"] + rules["MemoryClientThrottled"]
    for text in (shown, alerted):
        names = set(re.findall(r"memory_server_client_\w+", text))
        assert names >= {REQUESTS, THROTTLES} and names <= {REQUESTS, DENIALS, THROTTLES}
        assert all(name.removesuffix("_total") in exported for name in names), names
        assert "by (namespace, client" in text
