"""Types shared by every custom resource of the memory-operator.io API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "memory-operator.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# Kubernetes quantities ("10Gi", "500m", "1.5"); the API server is the final judge.
QUANTITY_PATTERN = r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$"
# Five-field cron, or a macro such as @daily.
CRON_PATTERN = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+\s+){4}\S+)$"
# A Kubernetes object name (DNS-1123 subdomain, kept short enough to suffix).
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Durations for retention: a count and a unit (hours, days, weeks).
DURATION_PATTERN = r"^[1-9][0-9]*[hdw]$"

Quantity = Annotated[str, Field(pattern=QUANTITY_PATTERN, max_length=64)]
ObjectName = Annotated[str, Field(pattern=NAME_PATTERN, min_length=1, max_length=63)]


def list_map(*keys: str) -> dict[str, Any]:
    """A list whose items are identified by `keys`: server-side apply merges it item by item, so that
    several writers (field managers) can each own their items."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


def cel(rule: str, message: str, field_path: str | None = None) -> dict[str, Any]:
    """A CEL validation rule for a schema, checked by the API server on every write."""
    validation: dict[str, Any] = {"rule": rule, "message": message}
    if field_path:
        validation["fieldPath"] = field_path
    return {"x-kubernetes-validations": [validation]}


def immutable(field: str) -> dict[str, Any]:
    """A rule that `field` of the schema's object never changes once the object exists."""
    return cel(f"self.{field} == oldSelf.{field}", f"{field} is immutable", f".{field}")


def rules(*schemas: dict[str, Any]) -> dict[str, Any]:
    """Several schema extras' CEL rules together."""
    return {"x-kubernetes-validations": [v for s in schemas for v in s.get("x-kubernetes-validations", [])]}


def immutable_when_set(field: str) -> dict[str, Any]:
    """A rule that optional `field`, once set, never changes nor goes away."""
    return cel(
        f"!has(oldSelf.{field}) || (has(self.{field}) && self.{field} == oldSelf.{field})",
        f"{field} is immutable once set",
        f".{field}",
    )


class ApiModel(BaseModel):
    """Base of every spec and status model: camelCase on the wire, unknown fields are errors."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
        validate_default=True,
    )

    def wire(self) -> dict[str, Any]:
        """The object as the API server stores it: camelCase keys, unset optionals left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class SecretKeyRef(ApiModel):
    """A key of a Secret in the object's namespace."""

    name: ObjectName
    """Name of the Secret."""
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")
    """Key inside the Secret whose value is used."""


class ResourceRequirements(ApiModel):
    """Compute resources of a container, as in a Pod spec."""

    requests: dict[str, Quantity] = Field(default_factory=dict)
    """Minimum resources, e.g. `{cpu: 100m, memory: 256Mi}`."""
    limits: dict[str, Quantity] = Field(default_factory=dict)
    """Maximum resources, e.g. `{memory: 1Gi}`."""


class Condition(ApiModel):
    """The state of one aspect of an object, shaped like `metav1.Condition`."""

    type: str = Field(max_length=316)
    """Kind of condition, e.g. `Ready`."""
    status: Literal["True", "False", "Unknown"]
    """Whether the condition holds."""
    reason: str = Field(default="", max_length=1024)
    """One CamelCase word saying why the condition is as it is."""
    message: str = Field(default="", max_length=32768)
    """What a person needs to know, and to do, about the condition."""
    last_transition_time: str | None = None
    """When the status last changed (RFC 3339)."""
    observed_generation: int | None = None
    """The `metadata.generation` the condition was computed from."""


class LabelSelectorRequirement(ApiModel):
    """One expression of a label selector."""

    key: str = Field(min_length=1, max_length=317)
    """Label key the expression applies to."""
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    """How the key relates to the values."""
    values: list[str] = Field(default_factory=list)
    """Values for `In` and `NotIn`; empty for `Exists` and `DoesNotExist`."""


class LabelSelector(ApiModel):
    """Selects objects by their labels; an empty selector selects every object."""

    match_labels: dict[str, str] = Field(default_factory=dict)
    """Labels an object must carry, with these values."""
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list)
    """Further requirements, all of which must hold."""

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether an object with these labels is selected."""
        if any(labels.get(key) != value for key, value in self.match_labels.items()):
            return False
        return all(_requirement_holds(req, labels) for req in self.match_expressions)


def _requirement_holds(req: LabelSelectorRequirement, labels: dict[str, str]) -> bool:
    present = req.key in labels
    if req.operator == "Exists":
        return present
    if req.operator == "DoesNotExist":
        return not present
    if req.operator == "In":
        return present and labels[req.key] in req.values
    return not present or labels[req.key] not in req.values


class ObjectMeta(BaseModel):
    """The part of `metadata` the operator reads; everything else is kept as it is."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, alias_generator=to_camel)

    name: str
    namespace: str = "default"
    uid: str | None = None
    generation: int | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
