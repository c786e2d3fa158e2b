"""One real control plane per test session, the chart installed with helm, the operator running with the
chart's ServiceAccount token. Tests isolate themselves by namespace.

The control plane's programs come from scripts/build-control-plane.sh (scripts/setup.sh runs it). When
they are missing or do not start, every test here fails: the suite never skips.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster import (
    Client,
    CollectionJobs,
    Jobs,
    OperatorProcess,
    forbidden,
    install_chart,
    operator_command,
    run_tool,
    service_account_kubeconfig,
)
from e2e.fake_count import FakeCount
from memory_operator.controller.counting import QDRANT_URL_TEMPLATE_ENV
from support.controlplane import ControlPlane


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.slow)


@dataclass
class Cluster:
    plane: ControlPlane
    client: Client
    operator: OperatorProcess
    jobs: Jobs
    qdrant: FakeCount
    tmp: Path
    collections: CollectionJobs

    def kubectl(self, *args: str, check: bool = True) -> str:
        from e2e.cluster import KUBECTL

        return run_tool(KUBECTL, *args, kubeconfig_path=self.plane.admin_kubeconfig, check=check)


@pytest.fixture(scope="session")
def cluster(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("operator")
    client = Client(control_plane)
    install_chart(control_plane)
    token_config = service_account_kubeconfig(control_plane, client, tmp / "operator.kubeconfig")
    args, env = operator_command(client)
    qdrant = FakeCount().start()
    env[QDRANT_URL_TEMPLATE_ENV] = qdrant.template
    operator = OperatorProcess(args, env, token_config, control_plane.logs / "operator.log").start()
    jobs = Jobs(client, control_plane.admin_kubeconfig)
    collections = CollectionJobs(client, jobs).start()
    try:
        yield Cluster(control_plane, client, operator, jobs, qdrant, tmp, collections)
    finally:
        collections.stop()
        operator.stop()
        qdrant.stop()


# The end-to-end test modules that ran in this session (test_zz_permissions needs them all).
RAN: set[str] = set()


@pytest.fixture(autouse=True)
def operator_never_forbidden(request: pytest.FixtureRequest) -> Iterator[None]:
    """A 403 for any call the operator makes fails the test: the chart's RBAC must be sufficient."""
    if "cluster" not in request.fixturenames:
        yield
        return
    cluster: Cluster = request.getfixturevalue("cluster")
    RAN.add(Path(str(request.node.path)).stem)
    since = time.time()
    yield
    # The last calls of the test may still be on their way into the log.
    time.sleep(0.5)
    refused = forbidden(cluster.plane, since)
    assert refused == [], f"the operator was refused: {refused}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    if report.failed and "control_plane" in getattr(item, "fixturenames", ()):
        plane: ControlPlane | None = item.funcargs.get("control_plane")  # type: ignore[attr-defined]
        if plane is None and "cluster" in item.funcargs:  # type: ignore[attr-defined]
            plane = item.funcargs["cluster"].plane  # type: ignore[attr-defined]
        if plane is not None:
            report.sections.append(("control plane logs", f"kept in {plane.logs}"))
            report.sections.append(("operator log (tail)", plane.log_tail("operator", 6000)))
    return report
