"""`memory-operator run`: the operator process (Kopf, standalone, one replica)."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import socket
from typing import Any

from memory_operator import deployment, env
from memory_operator.controller.settings import Options


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--namespace",
        "-n",
        action="append",
        metavar="NS",
        default=[n for n in (env.get("MEMORY_OPERATOR_NAMESPACES") or "").split(",") if n] or None,
        help="watch only this namespace (repeatable, or comma-separated; env MEMORY_OPERATOR_NAMESPACES)",
    )
    parser.add_argument(
        "--all-namespaces",
        "-A",
        action="store_true",
        help="watch every namespace (the default when no --namespace is given)",
    )
    parser.add_argument(
        "--liveness-port",
        type=int,
        default=int(env.get("MEMORY_OPERATOR_LIVENESS_PORT", "8080") or 8080),
        help="port of GET /healthz (env MEMORY_OPERATOR_LIVENESS_PORT)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=int(env.get("MEMORY_OPERATOR_METRICS_PORT", "9090") or 9090),
        help="port of GET /metrics (env MEMORY_OPERATOR_METRICS_PORT)",
    )
    parser.add_argument(
        "--bind-address", default=env.get("MEMORY_OPERATOR_BIND_ADDRESS", "0.0.0.0"), help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--job-image",
        default=env.get("MEMORY_OPERATOR_JOB_IMAGE"),
        help="image of the expiration and backup jobs (env MEMORY_OPERATOR_JOB_IMAGE)",
    )
    parser.add_argument(
        "--operator-namespace",
        default=env.get("MEMORY_OPERATOR_NAMESPACE"),
        help="the operator's own namespace (env MEMORY_OPERATOR_NAMESPACE)",
    )
    deployment.add_arguments(parser, from_env=True)
    parser.add_argument("--log-format", choices=["json", "plain"], default="plain", help="log line format")
    parser.add_argument("--verbose", action="store_true", help="log more")
    # Tests shorten the drift-repair interval; production keeps the default.
    parser.add_argument(
        "--resync-seconds",
        type=float,
        default=float(env.get("MEMORY_OPERATOR_RESYNC_SECONDS", "300") or 300),
        help=argparse.SUPPRESS,
    )
    # How often a store with a backup schedule checks for a due tick (tests shorten it).
    parser.add_argument(
        "--schedule-check-seconds",
        type=float,
        default=float(env.get("MEMORY_OPERATOR_SCHEDULE_CHECK_SECONDS", "30") or 30),
        help=argparse.SUPPRESS,
    )
    parser.add_argument(
        "--peering",
        default=env.get("MEMORY_OPERATOR_PEERING"),
        metavar="NAME",
        help="run as one of several replicas: peer through Kopf's peering object NAME (created if missing), "
        "so that one replica reconciles at a time (env MEMORY_OPERATOR_PEERING; default: standalone)",
    )
    # Seconds a replica that stopped answering counts as alive (tests shorten it).
    parser.add_argument(
        "--peering-lifetime",
        type=int,
        default=int(env.get("MEMORY_OPERATOR_PEERING_LIFETIME", "60") or 60),
        help=argparse.SUPPRESS,
    )
    # At most this many objects handled at once (0: no limit).
    parser.add_argument("--worker-limit", type=int, default=0, help=argparse.SUPPRESS)
    # Tests reach Qdrant at a local address instead of its in-cluster Service (memoryCount).
    parser.add_argument(
        "--qdrant-url-template",
        default=env.get("MEMORY_OPERATOR_QDRANT_URL_TEMPLATE"),
        help=argparse.SUPPRESS,
    )


def run(args: argparse.Namespace) -> int:
    import kopf
    from kubernetes import config

    from memory_operator.controller import metrics, namespaces
    from memory_operator.controller.client_sync import ClientSync
    from memory_operator.controller.handlers import Context, register_all
    from memory_operator.controller.kube import Kube, api_client
    from memory_operator.controller.peering import Peering
    from memory_operator.controller.reconcile import Reconciler
    from memory_operator.images import DEFAULT_JOB_IMAGE
    from memory_operator.render import RenderSettings

    options = Options.from_args(args)
    configure_logging(options)
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    kube = Kube(api_client())
    render_settings = RenderSettings(
        job_image=options.job_image or DEFAULT_JOB_IMAGE,
        operator_namespace=options.operator_namespace,
        # Learnt from discovery now, and from the watch of its CRD afterwards (handlers/store.py).
        cert_manager=serves_certificates(kube),
        **deployment.render_settings(args),
    )
    peering = (
        Peering(
            options.peering,
            own_identity(),
            # Replicas with the same priority would all pause: each takes a random one, and the highest
            # reconciles while the others wait for it to go.
            secrets.randbelow(2**31) + 1,
            () if options.all_namespaces else options.namespaces,
        )
        if options.peering
        else None
    )
    registry = kopf.OperatorRegistry()
    register_all(
        registry,
        Context(
            kube=kube,
            reconciler=Reconciler(kube, render_settings, options.qdrant_url_template),
            clients=ClientSync(kube),
            render_settings=render_settings,
            options=options,
            peering=peering,
        ),
    )
    metrics.serve(options.metrics_port, options.bind_address)
    if options.peering:
        ensure_peering(kube, options)
    namespaces.serve_namespaces_until_gone()
    kopf.run(
        registry=registry,
        standalone=not options.peering,
        peering_name=options.peering,
        # Kopf's `Identity` is a NewType of str it does not export.
        identity=peering.identity if peering else None,  # type: ignore[arg-type]
        priority=peering.priority if peering else None,
        clusterwide=options.all_namespaces,
        namespaces=() if options.all_namespaces else options.namespaces,
        liveness_endpoint=f"http://{options.bind_address}:{options.liveness_port}/healthz",
    )
    return 0


def own_identity() -> str:
    """This replica's name among its peers: its pod's (POD_ID, as Kopf reads it), else one of its own."""
    return os.environ.get("POD_ID") or f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"


def configure_logging(options: Options) -> None:
    import kopf

    kopf.configure(
        verbose=options.verbose,
        log_format=kopf.LogFormat.JSON if options.log_format == "json" else kopf.LogFormat.PLAIN,
    )
    # The client logs whole response bodies at debug level, Secrets included: never let it.
    logging.getLogger("kubernetes").setLevel(logging.INFO)
    # Kopf says "Handler ... succeeded." of every handler run: a line per event of every store and
    # child, thousands when many stores start at once. Its warnings and errors still show.
    logging.getLogger("kopf.objects").setLevel(logging.DEBUG if options.verbose else logging.WARNING)


def serves_certificates(kube: Any) -> bool:
    """Whether the cluster serves cert-manager's Certificates (for stores with `tls.issuerRef`)."""
    import asyncio

    return bool(asyncio.run(kube.serves("cert-manager.io/v1", "certificates")))


def ensure_peering(kube: Any, options: Options) -> None:
    """Create Kopf's peering object (one per watched namespace, or the cluster's) if it is missing."""
    import asyncio

    from memory_operator.controller.kube import CLUSTER_PEERING, PEERING

    async def create() -> None:
        name = options.peering
        if options.all_namespaces:
            await kube.create(
                {"apiVersion": "kopf.dev/v1", "kind": CLUSTER_PEERING.kind, "metadata": {"name": name}}
            )
            return
        for namespace in options.namespaces:
            body = {
                "apiVersion": "kopf.dev/v1",
                "kind": PEERING.kind,
                "metadata": {"name": name, "namespace": namespace},
            }
            await kube.create(body)

    asyncio.run(create())
