"""Every rendered object is valid for every Kubernetes minor version the operator supports (1.31 on).

Strict: an unknown field is an error, as it is to a server-side apply with field validation.
"""

from __future__ import annotations

import functools
from typing import Any

import kubernetes_validate
import pytest
from kubernetes_validate.utils import all_versions
from packaging.version import Version

from render.helpers import POLICIES, REPRESENTATIVE_SPECS, render

OLDEST_SUPPORTED = Version("1.31")


def supported_versions() -> list[str]:
    """One version per minor that kubernetes-validate ships, from 1.31 to its newest."""
    minors = {Version(v).release[:2]: v for v in all_versions()}
    return sorted(
        (v for release, v in minors.items() if Version(".".join(map(str, release))) >= OLDEST_SUPPORTED),
        key=Version,
    )


@functools.cache
def all_renderings() -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{name}/{m['kind']}/{m['metadata']['name']}", m)
        for name, spec in sorted(REPRESENTATIVE_SPECS.items())
        for m in render(spec, POLICIES)
    ]


def test_the_newest_supported_version_is_recent() -> None:
    versions = supported_versions()
    assert versions[0].startswith("1.31")
    assert Version(versions[-1]) >= Version("1.33")


@pytest.mark.parametrize("version", supported_versions())
def test_rendered_objects_validate(version: str) -> None:
    errors = []
    for label, manifest in all_renderings():
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            errors.append(f"{label}: {error.message} at {list(error.path)}")
    assert not errors, "\n".join(errors)


def test_an_unknown_field_is_caught() -> None:
    import copy

    sts = copy.deepcopy(next(m for _, m in all_renderings() if m["kind"] == "StatefulSet"))
    sts["spec"]["template"]["spec"]["containers"][0]["notAField"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, supported_versions()[-1], strict=True)
