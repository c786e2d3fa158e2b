"""Generates the CustomResourceDefinitions from the pydantic models of the API.

Pydantic emits JSON Schema with `$ref`s, `anyOf` for optionals and titles; Kubernetes wants a
structural OpenAPI v3 schema: everything inlined, one type per node, defaults where the API server
should apply them. This module turns the one into the other, so the models stay the single source.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema, to_jsonable_python

from memory_operator.api import backup, client, erasure, policy, store
from memory_operator.api.common import GROUP, VERSION
from memory_operator.api.store import MAX_NAME_LENGTH as MAX_NAME

Schema = dict[str, Any]

# Keywords of JSON Schema that a structural schema does not accept or that say nothing to Kubernetes.
_DROPPED_KEYWORDS = {"title", "$defs", "additionalProperties_false"}


class _DefaultsAsApplied(GenerateJsonSchema):
    """Also emits the defaults of `default_factory` fields, so nested defaults reach the API server."""

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        factory = schema.get("default_factory")
        if factory is None or schema.get("default_factory_takes_data"):
            return super().default_schema(schema)
        inner = self.generate_inner(schema["schema"])
        value = factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            default = value.model_dump(by_alias=True, exclude_none=True, mode="json")
        else:
            default = to_jsonable_python(value)
        if default in ({}, []) and not isinstance(value, BaseModel):
            return inner
        return {**inner, "default": default}


def openapi_schema(model: type[BaseModel]) -> Schema:
    """The structural OpenAPI v3 schema of a model, as a CRD's `openAPIV3Schema` wants it."""
    raw = model.model_json_schema(by_alias=True, mode="validation", schema_generator=_DefaultsAsApplied)
    return _structural(raw, raw.get("$defs", {}))


def _structural(node: Schema, defs: dict[str, Schema]) -> Schema:
    node = _inline(node, defs)
    out: Schema = {}
    for key, value in node.items():
        if key in _DROPPED_KEYWORDS:
            continue
        if key == "properties":
            out[key] = {name: _structural(sub, defs) for name, sub in value.items()}
        elif key in ("items",) or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = _structural(value, defs)
        elif key == "additionalProperties":
            continue  # `false` is implied by a structural schema with properties
        elif key == "const":
            out["enum"] = [value]
        elif key == "required":
            # Fields with a default are filled by the API server, so they are never required.
            props = node.get("properties", {})
            required = [name for name in value if "default" not in props.get(name, {})]
            if required:
                out[key] = required
        else:
            out[key] = value
    if out.get("default", "unset") is None:
        del out["default"]
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    return out


def _inline(node: Schema, defs: dict[str, Schema]) -> Schema:
    """Resolves `$ref`, `allOf` of one and `anyOf` with null into one plain node, keeping sibling keys."""
    node = dict(node)
    while True:
        if "$ref" in node:
            target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
            node = _merge(target, node)
        elif "allOf" in node and len(node["allOf"]) == 1:
            node = _merge(node.pop("allOf")[0], node)
        elif "anyOf" in node:
            options = [o for o in node["anyOf"] if o.get("type") != "null"]
            if len(options) != 1:
                raise ValueError(f"a structural schema cannot express anyOf {node['anyOf']}")
            node.pop("anyOf")
            node = _merge(options[0], node)
        else:
            return node


def _merge(base: Schema, override: Schema) -> Schema:
    merged = {**base, **override}
    rules = base.get("x-kubernetes-validations", []) + override.get("x-kubernetes-validations", [])
    if rules:
        merged["x-kubernetes-validations"] = rules
    return merged


class CrdInfo(BaseModel):
    kind: str
    plural: str
    short_names: list[str]
    spec_model: type[BaseModel]
    status_model: type[BaseModel]
    description: str
    printer_columns: list[dict[str, Any]]
    object_rules: list[dict[str, str]] = []


_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}

# Deleting a CRD deletes every object of its kind, so every store: Argo CD neither prunes the CRDs nor
# deletes them with its Application. (Helm never deletes its `crds/` folder's CRDs; the chart adds
# `helm.sh/resource-policy: keep` to the CRDs it renders as templates.)
ARGOCD_SYNC_OPTIONS = {"argocd.argoproj.io/sync-options": "Delete=false,Prune=false"}
# `kubectl get memory` lists every kind; none is in `all`, so `kubectl delete all --all` deletes no store.
CATEGORIES = ["memory"]

CRDS = [
    CrdInfo(
        kind=store.KIND,
        plural=store.PLURAL,
        short_names=["mstore", "mstores"],
        spec_model=store.MemoryStoreSpec,
        status_model=store.MemoryStoreStatus,
        description=store.MemoryStore.__doc__ or "",
        printer_columns=[
            {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Replicas", "type": "string", "jsonPath": ".status.readyReplicas"},
            {"name": "Flavor", "type": "string", "jsonPath": ".spec.server.flavor", "priority": 1},
            {"name": "Memories", "type": "integer", "jsonPath": ".status.memoryCount", "priority": 1},
            _AGE,
        ],
        object_rules=[
            {
                "rule": f"self.metadata.name.matches('^[a-z]') && size(self.metadata.name) <= {MAX_NAME}",
                "message": f"a MemoryStore name starts with a letter and has at most {MAX_NAME} characters",
            }
        ],
    ),
    CrdInfo(
        kind=policy.KIND,
        plural=policy.PLURAL,
        short_names=["mpolicy", "mpolicies"],
        spec_model=policy.MemoryPolicySpec,
        status_model=policy.MemoryPolicyStatus,
        description=policy.MemoryPolicy.__doc__ or "",
        printer_columns=[
            {"name": "Schedule", "type": "string", "jsonPath": ".spec.schedule"},
            {"name": "Stores", "type": "string", "jsonPath": ".status.matchedStores"},
            {"name": "Suspended", "type": "boolean", "jsonPath": ".spec.suspend"},
            {"name": "DryRun", "type": "boolean", "jsonPath": ".spec.dryRun", "priority": 1},
            _AGE,
        ],
    ),
    CrdInfo(
        kind=backup.KIND,
        plural=backup.PLURAL,
        short_names=["mbackup", "mbackups"],
        spec_model=backup.MemoryBackupSpec,
        status_model=backup.MemoryBackupStatus,
        description=backup.MemoryBackup.__doc__ or "",
        printer_columns=[
            {"name": "Store", "type": "string", "jsonPath": ".spec.storeRef.name"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Size", "type": "integer", "jsonPath": ".status.sizeBytes"},
            {"name": "Location", "type": "string", "jsonPath": ".status.location", "priority": 1},
            _AGE,
        ],
    ),
    CrdInfo(
        kind=client.KIND,
        plural=client.PLURAL,
        short_names=["mclient", "mclients"],
        spec_model=client.MemoryClientSpec,
        status_model=client.MemoryClientStatus,
        description=client.MemoryClient.__doc__ or "",
        printer_columns=[
            {"name": "Store", "type": "string", "jsonPath": ".spec.store"},
            {"name": "Access", "type": "string", "jsonPath": ".spec.access"},
            {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
            {"name": "Reason", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].reason'},
            {"name": "Secret", "type": "string", "jsonPath": ".status.secretName", "priority": 1},
            _AGE,
        ],
    ),
    CrdInfo(
        kind=erasure.KIND,
        plural=erasure.PLURAL,
        short_names=["merasure", "merasures"],
        spec_model=erasure.MemoryErasureSpec,
        status_model=erasure.MemoryErasureStatus,
        description=erasure.MemoryErasure.__doc__ or "",
        printer_columns=[
            {"name": "Store", "type": "string", "jsonPath": ".spec.store"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Deleted", "type": "integer", "jsonPath": ".status.deleted"},
            {"name": "Verified", "type": "boolean", "jsonPath": ".status.verified"},
            {"name": "Reference", "type": "string", "jsonPath": ".spec.reference"},
            {"name": "Completed", "type": "date", "jsonPath": ".status.completionTime", "priority": 1},
            {
                "name": "BackupsAgeOutBy",
                "type": "string",
                "jsonPath": ".status.backupsAgeOutBy",
                "priority": 1,
            },
            _AGE,
        ],
        object_rules=[
            {
                "rule": f"size(self.metadata.name) <= {erasure.MAX_NAME_LENGTH}",
                "message": f"a MemoryErasure name has at most {erasure.MAX_NAME_LENGTH} characters",
            }
        ],
    ),
]


def crd(info: CrdInfo) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind."""
    status = openapi_schema(info.status_model)
    status.pop("default", None)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{info.plural}.{GROUP}",
            "labels": {
                "app.kubernetes.io/name": "memory-operator",
                "app.kubernetes.io/part-of": "memory-operator",
            },
            "annotations": dict(ARGOCD_SYNC_OPTIONS),
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.kind.lower(),
                "shortNames": info.short_names,
                "categories": list(CATEGORIES),
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": info.printer_columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": " ".join(info.description.split()),
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string", "description": "APIVersion of the object."},
                                "kind": {"type": "string", "description": "Kind of the object."},
                                "metadata": {"type": "object"},
                                "spec": openapi_schema(info.spec_model),
                                "status": status,
                            },
                            **({"x-kubernetes-validations": info.object_rules} if info.object_rules else {}),
                        }
                    },
                }
            ],
        },
    }


def all_crds() -> list[dict[str, Any]]:
    return [crd(info) for info in CRDS]


def crd_file_name(info: CrdInfo) -> str:
    return f"{GROUP}_{info.plural}.yaml"


def to_yaml(document: dict[str, Any]) -> str:
    return yaml.safe_dump(document, sort_keys=False, width=100, allow_unicode=True)


def rendered_files() -> dict[str, str]:
    """File name to content of every CRD, exactly as `crds/` holds them."""
    return {crd_file_name(info): "---\n" + to_yaml(crd(info)) for info in CRDS}
