"""The CRDs: generated from the models without drift, valid CRDs, documented, and as strict as the models.

Custom resources are checked the way the API server would: defaults applied, then the OpenAPI v3 schema
(with `jsonschema`, unknown fields refused as with `fieldValidation=Strict`), then the CEL rules of
`x-kubernetes-validations`, evaluated with cel-python, including transition rules against an old object.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions
from pydantic import ValidationError

from memory_operator.api import MemoryBackup, MemoryClient, MemoryErasure, MemoryPolicy, MemoryStore
from memory_operator.crdgen import rendered_files

ROOT = Path(__file__).resolve().parents[1]
CRD_DIR = ROOT / "crds"
EXAMPLES = ROOT / "manifests" / "examples"
MODELS = {
    "MemoryStore": MemoryStore,
    "MemoryPolicy": MemoryPolicy,
    "MemoryBackup": MemoryBackup,
    "MemoryClient": MemoryClient,
    "MemoryErasure": MemoryErasure,
}
Schema = dict[str, Any]


@functools.cache
def crds() -> dict[str, dict[str, Any]]:
    """kind -> CRD, as committed."""
    loaded = [yaml.safe_load(path.read_text()) for path in sorted(CRD_DIR.glob("*.yaml"))]
    return {crd["spec"]["names"]["kind"]: crd for crd in loaded}


def schema_of(kind: str) -> Schema:
    return crds()[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


# --- the files -----------------------------------------------------------------------------------


def test_crds_match_the_models() -> None:
    expected = rendered_files()
    actual = {path.name: path.read_text() for path in CRD_DIR.glob("*.yaml")}
    assert actual == expected, (
        "crds/ is out of date with the pydantic models: "
        "run `memory-operator crds -o crds` and commit the result"
    )


@pytest.mark.parametrize("version", sorted({"1.31.0", all_versions()[-1]}))
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_crds_are_valid_customresourcedefinitions(kind: str, version: str) -> None:
    kubernetes_validate.validate(crds()[kind], version, strict=True)


def _undocumented(node: Schema, path: str) -> Iterator[str]:
    for name, sub in (node.get("properties") or {}).items():
        # `metadata` is the standard ObjectMeta: the API server refuses anything but its type there.
        if "description" not in sub and path + name != ".metadata":
            yield path + name
        yield from _undocumented(sub, f"{path}{name}.")
    if isinstance(node.get("items"), dict):
        yield from _undocumented(node["items"], path.rstrip(".") + "[].")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _undocumented(node["additionalProperties"], path.rstrip(".") + "{}.")


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_every_field_is_described(kind: str) -> None:
    assert list(_undocumented(schema_of(kind), ".")) == []


# --- the API server's checks, reproduced --------------------------------------------------------


def with_defaults(node: Schema, value: Any) -> Any:
    """`value` with the schema's defaults filled in, as the API server does before validating."""
    if isinstance(value, dict) and "properties" in node:
        result = dict(value)
        for name, sub in node["properties"].items():
            if name not in result and "default" in sub:
                result[name] = copy.deepcopy(sub["default"])
            if name in result:
                result[name] = with_defaults(sub, result[name])
        return result
    if isinstance(value, dict) and isinstance(node.get("additionalProperties"), dict):
        return {k: with_defaults(node["additionalProperties"], v) for k, v in value.items()}
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        return [with_defaults(node["items"], item) for item in value]
    return value


def strict(node: Schema) -> Schema:
    """The schema with unknown fields refused (a structural schema prunes them; Strict refuses them)."""
    out = dict(node)
    if "properties" in node:
        out["properties"] = {k: strict(v) for k, v in node["properties"].items()}
        if not node.get("x-kubernetes-preserve-unknown-fields"):
            out.setdefault("additionalProperties", False)
    if isinstance(node.get("items"), dict):
        out["items"] = strict(node["items"])
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = strict(node["additionalProperties"])
    return out


_CEL = celpy.Environment()


@functools.cache
def _program(rule: str) -> Any:
    return _CEL.program(_CEL.compile(rule))


def cel_failures(node: Schema, new: Any, old: Any = None) -> list[str]:
    """Messages of the CEL rules that fail; transition rules (oldSelf) only when there is an old value."""
    failures = []
    for validation in node.get("x-kubernetes-validations", []):
        rule = validation["rule"]
        if "oldSelf" in rule and old is None:
            continue
        activation = {"self": celpy.json_to_cel(new)}
        if old is not None:
            activation["oldSelf"] = celpy.json_to_cel(old)
        if not bool(_program(rule).evaluate(activation)):
            failures.append(validation["message"])
    if isinstance(new, dict):
        for name, sub in (node.get("properties") or {}).items():
            if name in new:
                previous = old.get(name) if isinstance(old, dict) else None
                failures += cel_failures(sub, new[name], previous)
        if isinstance(node.get("additionalProperties"), dict):
            for item in new.values():
                failures += cel_failures(node["additionalProperties"], item, None)
    if isinstance(new, list) and isinstance(node.get("items"), dict):
        for item in new:
            failures += cel_failures(node["items"], item, None)
    return failures


def api_server_errors(obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    """What the API server would say to a create (or, with `old`, an update) of `obj`."""
    schema = schema_of(obj["kind"])
    defaulted = with_defaults(schema, obj)
    validator = jsonschema.Draft202012Validator(strict(schema))
    errors = [
        f"{'.'.join(str(p) for p in error.absolute_path)}: {error.message}"
        for error in validator.iter_errors(defaulted)
    ]
    if errors:
        return errors
    return cel_failures(schema, defaulted, with_defaults(schema, old) if old is not None else None)


def examples() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield f"{path.name}/{doc['metadata']['name']}", doc


EXAMPLE_DOCS = dict(examples())


def test_every_kind_has_an_example() -> None:
    assert {doc["kind"] for doc in EXAMPLE_DOCS.values()} == set(MODELS)


@pytest.mark.parametrize("name", sorted(EXAMPLE_DOCS))
def test_examples_are_accepted(name: str) -> None:
    doc = EXAMPLE_DOCS[name]
    assert api_server_errors(doc) == []
    assert api_server_errors(doc, old=doc) == [], "an unchanged object passes its transition rules"
    MODELS[doc["kind"]].model_validate({**doc, "metadata": {**doc["metadata"], "namespace": "agents"}})


def store(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "memory-operator.io/v1alpha1",
        "kind": "MemoryStore",
        "metadata": {"name": "s", "namespace": "agents"},
        "spec": spec,
    }


def policy(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "memory-operator.io/v1alpha1",
        "kind": "MemoryPolicy",
        "metadata": {"name": "p", "namespace": "agents"},
        "spec": spec,
    }


S3 = {"bucket": "bkt", "credentialsSecret": "s3"}

# (id, object, expected fragment of the API server's message)
INVALID = [
    ("bad-enum", store({"server": {"flavor": "langchain"}}), "'langchain' is not one of"),
    ("replicas-0", store({"vectorStore": {"replicas": 0}}), "0 is less than the minimum of 1"),
    ("bad-cron", policy({"schedule": "every night"}), "does not match"),
    ("bad-max-age", policy({"rules": [{"name": "r", "maxAge": "7days"}]}), "does not match"),
    ("unknown-field", store({"vectorStore": {"replica": 3}}), "'replica' was unexpected"),
    ("bad-quantity", store({"vectorStore": {"storage": {"size": "lots"}}}), "does not match"),
    ("bad-deletion-policy", store({"deletionPolicy": "Orphan"}), "is not one of"),
    (
        "both-destinations",
        store({"backup": {"destination": {"pvc": {}, "s3": S3}}}),
        "exactly one of pvc and s3 must be set",
    ),
    (
        "store-name-starts-with-digit",
        {**store({}), "metadata": {"name": "7agents", "namespace": "agents"}},
        "a MemoryStore name starts with a letter and has at most 45 characters",
    ),
    (
        "store-name-too-long",
        {**store({}), "metadata": {"name": "a" * 46, "namespace": "agents"}},
        "a MemoryStore name starts with a letter and has at most 45 characters",
    ),
    ("no-destination", store({"backup": {"destination": {}}}), "exactly one of pvc and s3 must be set"),
    (
        "openmemory-replicas",
        store({"server": {"flavor": "openmemory", "replicas": 2}}),
        "the openmemory flavor keeps state in SQLite and runs at most 1 replica",
    ),
    (
        "rule-with-both",
        policy({"rules": [{"name": "r", "maxAge": "7d", "keep": True}]}),
        "a rule sets exactly one of maxAge and keep: true",
    ),
    (
        "rule-with-neither",
        policy({"rules": [{"name": "r"}]}),
        "a rule sets exactly one of maxAge and keep: true",
    ),
]


@pytest.mark.parametrize(("obj", "expected"), [(o, e) for _, o, e in INVALID], ids=[i for i, _, _ in INVALID])
def test_invalid_objects_are_refused(obj: dict[str, Any], expected: str) -> None:
    errors = api_server_errors(obj)
    assert any(expected in error for error in errors), errors
    # The models refuse what the schema refuses: the operator never acts on what the API server would refuse.
    with pytest.raises(ValidationError):
        MODELS[obj["kind"]].model_validate(obj)


EMBEDDER = {"provider": "openai", "model": "m", "dims": 1536}

# (id, old, new, expected message)
TRANSITIONS = [
    (
        "collection-renamed",
        store({"vectorStore": {"collection": {"name": "a"}}}),
        store({"vectorStore": {"collection": {"name": "b"}}}),
        "name is immutable",
    ),
    (
        "dims-changed",
        store({"server": {"embedder": EMBEDDER}}),
        store({"server": {"embedder": {**EMBEDDER, "dims": 768}}}),
        "dims is immutable",
    ),
    (
        "storage-class-changed",
        store({"vectorStore": {"storage": {"storageClassName": "a"}}}),
        store({"vectorStore": {"storage": {"storageClassName": "b"}}}),
        "storageClassName is immutable once set",
    ),
    (
        "storage-class-removed",
        store({"vectorStore": {"storage": {"storageClassName": "a"}}}),
        store({}),
        "storageClassName is immutable once set",
    ),
    (
        "bootstrap-added",
        store({}),
        store({"bootstrap": {"fromBackup": {"name": "b"}}}),
        "bootstrap is immutable",
    ),
    (
        "bootstrap-removed",
        store({"bootstrap": {"fromBackup": {"name": "b"}}}),
        store({}),
        "bootstrap is immutable",
    ),
    (
        "bootstrap-changed",
        store({"bootstrap": {"fromBackup": {"name": "b"}}}),
        store({"bootstrap": {"fromBackup": {"name": "c"}}}),
        "bootstrap is immutable",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "expected"), [(o, n, e) for _, o, n, e in TRANSITIONS], ids=[i for i, *_ in TRANSITIONS]
)
def test_immutable_fields_refuse_changes(old: dict[str, Any], new: dict[str, Any], expected: str) -> None:
    assert api_server_errors(old) == [] and api_server_errors(new) == [], "each is valid on its own"
    assert expected in api_server_errors(new, old=old)


def test_allowed_changes_pass_the_transition_rules() -> None:
    old = store(
        {"vectorStore": {"replicas": 1, "storage": {"size": "10Gi"}}, "server": {"embedder": EMBEDDER}}
    )
    new = store({"vectorStore": {"replicas": 3, "storage": {"size": "20Gi", "storageClassName": "fast"}}})
    new["spec"]["server"] = {"embedder": EMBEDDER, "replicas": 4}
    assert api_server_errors(new, old=old) == []


def test_backup_spec_is_immutable() -> None:
    backup = EXAMPLE_DOCS["backup-on-demand.yaml/agents-prod-manual"]
    other = copy.deepcopy(backup)
    other["spec"]["storeRef"]["name"] = "another"
    assert "a MemoryBackup spec is immutable" in api_server_errors(other, old=backup)
