"""Settings of the operator's deployment that reach every store's pods: where images come from, which
Secrets pull them, and which pods may scrape Qdrant's metrics.

`memory-operator run` takes them as flags or environment variables (the chart sets the variables);
`memory-operator render` takes the same flags, so that what it prints is what the operator applies.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from memory_operator import env

IMAGE_REGISTRY = "MEMORY_OPERATOR_IMAGE_REGISTRY"
IMAGE_PULL_SECRETS = "MEMORY_OPERATOR_IMAGE_PULL_SECRETS"
METRICS_NAMESPACE_SELECTOR = "MEMORY_OPERATOR_METRICS_NAMESPACE_SELECTOR"
METRICS_POD_SELECTOR = "MEMORY_OPERATOR_METRICS_POD_SELECTOR"


def labels(text: str) -> dict[str, str]:
    """`key=value,key=value` as a dict (an argparse type)."""
    found: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"expected key=value, got {item!r}")
        found[key.strip()] = value.strip()
    return found


def add_arguments(parser: argparse.ArgumentParser, *, from_env: bool) -> None:
    """The flags; with `from_env`, each defaults to its environment variable."""

    def default(name: str) -> str | None:
        return env.get(name) if from_env else None

    parser.add_argument(
        "--image-registry",
        default=default(IMAGE_REGISTRY),
        metavar="REGISTRY",
        help="pull every default image (Qdrant, the memory servers, the jobs) from this registry, e.g. "
        f"registry.example.com/mirror; images a store names are used as given (env {IMAGE_REGISTRY})",
    )
    secrets = default(IMAGE_PULL_SECRETS)
    parser.add_argument(
        "--image-pull-secret",
        dest="image_pull_secrets",
        action="append",
        default=[s for s in (secrets or "").split(",") if s.strip()] or None,
        metavar="SECRET",
        help="Secret (in each store's namespace) that every store's pods pull with, before the store's "
        f"own (repeatable, or comma-separated; env {IMAGE_PULL_SECRETS})",
    )
    namespaces = default(METRICS_NAMESPACE_SELECTOR)
    parser.add_argument(
        "--metrics-namespace-selector",
        type=labels,
        default=labels(namespaces) if namespaces else None,
        metavar="KEY=VALUE,...",
        help="labels of the namespaces whose scrapers (a Prometheus) may reach Qdrant's /metrics through "
        f"the stores' NetworkPolicies; every namespace when only --metrics-pod-selector is given "
        f"(env {METRICS_NAMESPACE_SELECTOR})",
    )
    pods = default(METRICS_POD_SELECTOR)
    parser.add_argument(
        "--metrics-pod-selector",
        type=labels,
        default=labels(pods) if pods else None,
        metavar="KEY=VALUE,...",
        help="labels of those scraper pods; every pod of those namespaces when only "
        f"--metrics-namespace-selector is given (env {METRICS_POD_SELECTOR})",
    )


def render_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The `RenderSettings` fields these flags set."""
    from memory_operator.render import Scraper

    namespaces: Mapping[str, str] | None = args.metrics_namespace_selector
    pods: Mapping[str, str] | None = args.metrics_pod_selector
    scraper = None
    if namespaces is not None or pods is not None:
        scraper = Scraper(namespace_labels=dict(namespaces or {}), pod_labels=dict(pods or {}))
    secrets = [s.strip() for item in args.image_pull_secrets or [] for s in item.split(",") if s.strip()]
    return {
        "image_registry": args.image_registry or None,
        "image_pull_secrets": tuple(dict.fromkeys(secrets)),
        "metrics_scraper": scraper,
    }
