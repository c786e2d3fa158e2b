"""Where a component's pods run and what they carry: scheduling, labels, annotations, pull secrets.

The shapes are Kubernetes' own (`Toleration`, `TopologySpreadConstraint`, `Affinity`), so that what a
platform team writes for any Pod it writes here too; the renderers copy them into the pod templates.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic.json_schema import JsonDict

from memory_operator.api.common import ApiModel, LabelSelector, ObjectName

# A label or annotation key: an optional DNS prefix and a name. A structural schema cannot constrain
# map keys, so the operator checks them (and the API server again, when it admits the pod template).
METADATA_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LabelValue = Annotated[str, Field(pattern=r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$", max_length=63)]

# Kept as written: the API server checks the whole `Affinity` when it admits the pod template.
_PRESERVED: JsonDict = {"x-kubernetes-preserve-unknown-fields": True}


class LocalObjectReference(ApiModel):
    """An object of the store's namespace, by name."""

    name: ObjectName
    """Name of the object."""


class Toleration(ApiModel):
    """A taint the pods tolerate, as in a Pod spec."""

    key: str | None = Field(default=None, max_length=317)
    """Taint key; empty with `operator: Exists` tolerates every taint."""
    operator: Literal["Exists", "Equal"] | None = None
    """`Equal` (the default) compares the value; `Exists` matches any value."""
    value: str | None = Field(default=None, max_length=63)
    """Taint value, for `Equal`."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect matched; every effect when unset."""
    toleration_seconds: int | None = Field(default=None, ge=0)
    """For `NoExecute`: how long the pod stays once tainted; forever when unset."""


class TopologySpreadConstraint(ApiModel):
    """How the pods spread over a topology (zones, hosts), as in a Pod spec."""

    max_skew: int = Field(default=1, ge=1)
    """Most pods one domain may have beyond the least loaded one."""
    topology_key: str = Field(min_length=1, max_length=317)
    """Node label whose values are the domains, e.g. `topology.kubernetes.io/zone`."""
    when_unsatisfiable: Literal["DoNotSchedule", "ScheduleAnyway"] = "DoNotSchedule"
    """`DoNotSchedule` keeps a pod pending rather than break the skew; `ScheduleAnyway` only prefers."""
    label_selector: LabelSelector | None = None
    """Pods counted in each domain; the component's own pods of this store when unset."""
    min_domains: int | None = Field(default=None, ge=1)
    """Domains counted as present even when empty (with `DoNotSchedule`)."""
    match_label_keys: list[Annotated[str, Field(max_length=317)]] = Field(default_factory=list)
    """Pod label keys whose values narrow the counted pods to those of the same value."""
    node_affinity_policy: Literal["Honor", "Ignore"] | None = None
    """Whether the pod's node selector and affinity limit the domains (`Honor` by default)."""
    node_taints_policy: Literal["Honor", "Ignore"] | None = None
    """Whether node taints the pod does not tolerate limit the domains (`Ignore` by default)."""


class PodSettings(ApiModel):
    """Where a component's pods run and the metadata they carry, in the Pod spec's own terms."""

    labels: dict[str, LabelValue] = Field(default_factory=dict)
    """Extra labels of the pods; the operator's own labels win on a clash."""
    annotations: dict[str, str] = Field(default_factory=dict)
    """Extra annotations of the pods, e.g. for a service mesh or a log shipper."""
    node_selector: dict[str, LabelValue] = Field(default_factory=dict)
    """Node labels the pods require."""
    tolerations: list[Toleration] = Field(default_factory=list, max_length=64)
    """Taints the pods tolerate."""
    affinity: dict[str, Any] | None = Field(default=None, json_schema_extra=_PRESERVED)
    """Node and pod (anti-)affinity, as a Pod spec's `affinity`. For a Qdrant cluster it replaces the
    operator's preferred spreading over hosts only when it sets `podAntiAffinity` itself."""
    topology_spread_constraints: list[TopologySpreadConstraint] = Field(default_factory=list, max_length=16)
    """How the pods spread over zones or hosts."""
    priority_class_name: str | None = Field(default=None, min_length=1, max_length=253)
    """PriorityClass of the pods."""

    @field_validator("labels", "annotations", "node_selector")
    @classmethod
    def _keys_are_label_keys(cls, value: dict[str, str]) -> dict[str, str]:
        return metadata_keys_checked(value)


def metadata_keys_checked(value: dict[str, str]) -> dict[str, str]:
    """`value`, once every key is a valid label or annotation key."""
    bad = [key for key in value if not METADATA_KEY.match(key)]
    if bad:
        raise ValueError(f"not a label or annotation key: {', '.join(sorted(bad))}")
    return value
