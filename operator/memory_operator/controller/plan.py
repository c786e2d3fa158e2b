"""Desired children versus live ones: what to apply, what to prune, and nothing when they are equal.

A child is applied when it is missing, when the manifest the operator would apply differs from the one
it applied last (a hash kept in an annotation of the child: this catches fields the operator stopped
rendering), or when someone changed a field the operator sets (every rendered field must be present,
equal, in the live object: this catches drift). Fields the API server or other controllers add are
ignored, so a converged child costs no write.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubernetes.utils import parse_quantity

from memory_operator import labels

HASH_ANNOTATION = labels.APPLIED_HASH
# Kinds the operator deletes when no longer rendered. PersistentVolumeClaims hold data and Secrets hold
# keys that clients already use: those are never pruned.
# Services, the server's Deployment and the jobs' ServiceAccount are rendered for as long as the store
# lives, under names that never change: they are never pruned (controller/permissions.py grants no
# delete for them).
PRUNABLE_KINDS = frozenset(
    {"ConfigMap", "StatefulSet", "CronJob", "NetworkPolicy", "PodDisruptionBudget", "Certificate"}
)


@dataclass(frozen=True)
class ObjectRef:
    api_version: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, manifest: Mapping[str, Any]) -> ObjectRef:
        meta = manifest["metadata"]
        return cls(manifest["apiVersion"], manifest["kind"], meta.get("namespace", ""), meta["name"])


@dataclass
class Plan:
    apply: list[dict[str, Any]] = field(default_factory=list)
    """Stamped manifests to server-side apply, in render order."""
    prune: list[ObjectRef] = field(default_factory=list)
    """Children no longer rendered."""
    unchanged: int = 0
    """Children already as desired."""


def owner_reference(owner: Mapping[str, Any]) -> dict[str, Any]:
    """A controller reference to `owner`, so that deleting it collects the child."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


# The helpers below copy what they change (the manifest and its metadata) and share the rest with their
# input: every reconcile renders its manifests afresh and nothing edits them after, so the deep copies
# these once made were most of the controller's own CPU time in a burst of new stores.


def with_metadata(manifest: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    """A copy of `manifest` whose metadata has `fields` set (`None` removes one)."""
    meta = {**manifest.get("metadata", {}), **fields}
    return {**manifest, "metadata": {k: v for k, v in meta.items() if v is not None}}


def owned(manifest: Mapping[str, Any], owner: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `manifest` owned by `owner`."""
    return with_metadata(manifest, ownerReferences=[owner_reference(owner)])


def manifest_hash(manifest: Mapping[str, Any]) -> str:
    """A stable digest of a manifest, without its own hash annotation."""
    annotations = manifest.get("metadata", {}).get("annotations")
    if annotations is not None:
        kept = {k: v for k, v in annotations.items() if k != HASH_ANNOTATION}
        manifest = with_metadata(manifest, annotations=kept or None)
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def stamped(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `manifest` carrying the hash of its content."""
    annotations = manifest.get("metadata", {}).get("annotations") or {}
    return with_metadata(manifest, annotations={**annotations, HASH_ANNOTATION: manifest_hash(manifest)})


def comparable(manifest: Mapping[str, Any]) -> Mapping[str, Any]:
    """The manifest as the API server stores it (Secrets keep `data`, never `stringData`)."""
    if manifest.get("kind") != "Secret" or "stringData" not in manifest:
        return manifest
    result = {k: v for k, v in manifest.items() if k != "stringData"}
    encoded = {k: base64.b64encode(str(v).encode()).decode() for k, v in manifest["stringData"].items()}
    result["data"] = {**(manifest.get("data") or {}), **encoded}
    return result


# Leaves of a manifest: most of what is_subset compares, checked first (a Mapping check is slower).
_SCALARS = (str, int, float, bool, type(None))


def is_subset(desired: Any, live: Any) -> bool:
    """Whether every field of `desired` is present and equal in `live` (lists element by element)."""
    if isinstance(desired, _SCALARS):
        return bool(desired == live)
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return False
        return all(key in live and is_subset(value, live[key]) for key, value in desired.items())
    if isinstance(desired, list):
        if not isinstance(live, list) or len(desired) != len(live):
            return False
        return all(is_subset(d, lv) for d, lv in zip(desired, live, strict=True))
    return bool(desired == live)


def needs_apply(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> bool:
    """Whether a stamped desired manifest must be applied over the live object."""
    if live is None:
        return True
    desired_hash = desired["metadata"].get("annotations", {}).get(HASH_ANNOTATION)
    live_hash = (live.get("metadata", {}).get("annotations") or {}).get(HASH_ANNOTATION)
    if desired_hash != live_hash:
        return True
    return not is_subset(comparable(desired), live)


# Kinds made once and never changed: a Job's pod template is immutable, and a Job runs to its end.
CREATE_ONCE_KINDS = frozenset({"Job"})


def plan(desired: Sequence[Mapping[str, Any]], existing: Iterable[Mapping[str, Any]]) -> Plan:
    """Compare stamped desired manifests with the live children listed by the store's labels."""
    live_by_ref = {ObjectRef.of(obj): obj for obj in existing}
    result = Plan()
    desired_refs = set()
    for manifest in desired:
        ref = ObjectRef.of(manifest)
        desired_refs.add(ref)
        live = live_by_ref.get(ref)
        if live is not None and ref.kind in CREATE_ONCE_KINDS:
            result.unchanged += 1
        elif needs_apply(manifest, live):
            result.apply.append(dict(manifest))
        else:
            result.unchanged += 1
    for ref, obj in live_by_ref.items():
        if ref in desired_refs or ref.kind not in PRUNABLE_KINDS:
            continue
        if obj.get("metadata", {}).get("deletionTimestamp"):
            continue
        result.prune.append(ref)
    return result


def claim_template_pattern(statefulset: Mapping[str, Any]) -> re.Pattern[str]:
    """Names of the claims a StatefulSet makes from its volume templates: `<template>-<sts>-<ordinal>`."""
    sts_name = statefulset["metadata"]["name"]
    templates = [t["metadata"]["name"] for t in statefulset.get("spec", {}).get("volumeClaimTemplates") or []]
    alternatives = "|".join(re.escape(t) for t in templates) or "(?!)"
    return re.compile(rf"^(?:{alternatives})-{re.escape(sts_name)}-\d+$")


def claim_templates_changed(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> bool:
    """Whether a StatefulSet's volume claim templates differ from the live ones.

    The API server refuses to change them in place: the StatefulSet must be recreated (its pods and
    claims orphaned, then adopted again).
    """
    if live is None:
        return False
    wanted = desired.get("spec", {}).get("volumeClaimTemplates") or []
    current = live.get("spec", {}).get("volumeClaimTemplates") or []
    return not is_subset(wanted, current)


def template_sizes(statefulset: Mapping[str, Any]) -> dict[str, str]:
    """The storage request of each volume claim template, by template name."""
    return {
        t["metadata"]["name"]: t["spec"]["resources"]["requests"]["storage"]
        for t in statefulset.get("spec", {}).get("volumeClaimTemplates") or []
        if t.get("spec", {}).get("resources", {}).get("requests", {}).get("storage")
    }


def claims_to_grow(
    statefulset: Mapping[str, Any], claims: Iterable[Mapping[str, Any]]
) -> list[tuple[str, str]]:
    """(claim name, new size) of the StatefulSet's claims whose request is below their template's."""
    sts_name = statefulset["metadata"]["name"]
    sizes = template_sizes(statefulset)
    result = []
    for claim in claims:
        name = claim["metadata"]["name"]
        match = re.match(rf"^(.+)-{re.escape(sts_name)}-\d+$", name)
        if match is None or match.group(1) not in sizes:
            continue
        wanted = sizes[match.group(1)]
        current = claim.get("spec", {}).get("resources", {}).get("requests", {}).get("storage")
        if current is None or parse_quantity(current) < parse_quantity(wanted):
            result.append((name, wanted))
    return sorted(result)


def with_member(names: Sequence[str], name: str, member: bool) -> list[str]:
    """`names` (sorted) with `name` in it or not."""
    result = set(names) | {name} if member else set(names) - {name}
    return sorted(result)
