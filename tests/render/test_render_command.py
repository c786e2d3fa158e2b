"""`memory-operator render`: the examples render, invalid input exits 2 naming the field and file."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml

from memory_operator.cli import main
from memory_operator.render import names
from render.helpers import make_store

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples"
STORE_EXAMPLES = sorted(p.name for p in EXAMPLES.glob("store-*.yaml"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["render", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_store_examples_exist() -> None:
    assert {
        "store-minimal.yaml",
        "store-production.yaml",
        "store-openmemory.yaml",
        "store-restore.yaml",
    } <= set(STORE_EXAMPLES)


@pytest.mark.parametrize("example", STORE_EXAMPLES)
def test_each_store_example_renders(capsys: pytest.CaptureFixture[str], example: str) -> None:
    code, out, err = run(capsys, "-f", str(EXAMPLES / example), "-f", str(EXAMPLES / "policy-retention.yaml"))
    assert code == 0, err
    manifests = [d for d in yaml.safe_load_all(out) if d]
    kinds = {m["kind"] for m in manifests}
    assert {"StatefulSet", "Deployment", "Service", "NetworkPolicy", "Secret"} <= kinds
    assert all(m["metadata"]["namespace"] == "default" for m in manifests)


def test_policies_apply_to_the_stores_they_select(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "-f",
        str(EXAMPLES / "store-minimal.yaml"),
        "-f",
        str(EXAMPLES / "store-openmemory.yaml"),
        "-f",
        str(EXAMPLES / "policy-retention.yaml"),
    )
    assert code == 0
    cronjobs = sorted(m["metadata"]["name"] for m in yaml.safe_load_all(out) if m and m["kind"] == "CronJob")
    # The minimal store is labelled tier=agents; the openmemory one is not.
    agents = make_store(name="agents")
    assert cronjobs == sorted(
        [
            names.expiration_cronjob_name(agents, "operations-knowledge"),
            names.expiration_cronjob_name(agents, "api-sessions"),
        ]
    )


def test_policies_of_other_namespaces_do_not_apply(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    documents = """
apiVersion: memory-operator.io/v1alpha1
kind: MemoryStore
metadata: {name: a, namespace: team-a}
---
apiVersion: memory-operator.io/v1alpha1
kind: MemoryPolicy
metadata: {name: elsewhere, namespace: team-b}
spec: {rules: [{name: r, maxAge: 1d}]}
---
apiVersion: memory-operator.io/v1alpha1
kind: MemoryPolicy
metadata: {name: here, namespace: team-a}
spec: {rules: [{name: r, maxAge: 1d}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ignored}
"""
    monkeypatch.setattr("sys.stdin", io.StringIO(documents))
    code, out, _ = run(capsys, "-f", "-", "--no-secrets")
    assert code == 0
    manifests = [m for m in yaml.safe_load_all(out) if m]
    assert [
        m["metadata"]["labels"].get("memory-operator.io/policy") for m in manifests if m["kind"] == "CronJob"
    ] == ["here"]
    assert "Secret" not in {m["kind"] for m in manifests}
    assert "ignored" not in out


def test_keys_are_fresh_each_run(capsys: pytest.CaptureFixture[str]) -> None:
    example = str(EXAMPLES / "store-minimal.yaml")
    outputs = []
    for _ in range(2):
        code, out, _ = run(capsys, "-f", example)
        assert code == 0
        outputs.append([m for m in yaml.safe_load_all(out) if m and m["kind"] == "Secret"])
    assert outputs[0] and outputs[0] != outputs[1]


def test_invalid_store_names_the_field_and_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: memory-operator.io/v1alpha1\nkind: MemoryStore\nmetadata: {name: x}\n"
        "spec: {vectorStore: {replicas: 0}}\n"
    )
    code, out, err = run(capsys, "-f", str(bad))
    assert code == 2
    assert out == ""
    assert str(bad) in err
    assert "spec.vectorStore.replicas: Input should be greater than or equal to 1" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kind: MemoryPolicy\nmetadata: {name: p}\nspec: {schedule: nope}\n", "spec.schedule"),
        ("kind: MemoryPolicy\nmetadata: {name: p}\nspec: {rules: [{name: r}]}\n", "spec.rules[0]"),
        ("kind: MemoryStore\nmetadata: {}\n", "metadata.name: Field required"),
        ("kind: MemoryStore\nmetadata: {name: s}\nspec: {server: {flavour: x}}\n", "spec.server.flavour"),
    ],
)
def test_invalid_input_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, expected: str
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: memory-operator.io/v1alpha1\n" + text)
    code, _, err = run(capsys, "-f", str(bad))
    assert code == 2
    assert expected in err


def test_unreadable_input_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "-f", str(tmp_path / "missing.yaml"))
    assert code == 2 and "missing.yaml" in err
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [\n")
    code, _, err = run(capsys, "-f", str(broken))
    assert code == 2 and "not valid YAML" in err
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    code, _, err = run(capsys, "-f", str(empty))
    assert code == 2 and "no MemoryStore" in err


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["render", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--no-secrets" in out
    assert "never changes them" in out
