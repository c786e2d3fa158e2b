"""The helm and kubectl that scripts/install-tools.sh installs run, at the versions the tests expect."""

from __future__ import annotations

from install.helpers import run, tool


def test_helm_is_v4() -> None:
    assert run([tool("helm"), "version", "--short"]).stdout.startswith("v4.")


def test_kubectl_is_v1_34() -> None:
    assert "Client Version: v1.34." in run([tool("kubectl"), "version", "--client"]).stdout


def test_install_tools_is_idempotent() -> None:
    result = run(["bash", "scripts/install-tools.sh"])
    assert "already in" in result.stdout
