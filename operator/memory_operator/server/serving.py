"""How the memory server listens: plain HTTP, or HTTPS from a certificate and key, and with client CAs
mutual TLS: every connection must then present a client certificate one of them signed.

The kubelet's probes present no client certificate, so under mutual TLS `/healthz` and `/readyz` are
served on a plain-HTTP port of their own as well (`health_port`), and nothing else is on it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memory_operator import env, tls

if TYPE_CHECKING:
    import uvicorn

PROBE_PATHS = frozenset({"/healthz", "/readyz"})

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class Listening:
    host: str
    port: int
    certificate: Path | None = None
    key: Path | None = None
    client_cas: tuple[Path, ...] = ()
    health_port: int | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.certificate is not None else "http"


def add_arguments(parser: argparse.ArgumentParser | Any) -> None:
    """The TLS flags of `memory-operator server` (an argument group or parser)."""
    parser.add_argument(
        "--tls-cert",
        type=Path,
        default=env.get(env.TLS_CERT_FILE),
        help=f"serve HTTPS with this certificate (PEM; {env.TLS_CERT_FILE})",
    )
    parser.add_argument(
        "--tls-key",
        type=Path,
        default=env.get(env.TLS_KEY_FILE),
        help=f"the certificate's private key (PEM; {env.TLS_KEY_FILE})",
    )
    parser.add_argument(
        "--tls-client-ca",
        type=Path,
        action="append",
        default=[Path(p) for p in (env.get(env.TLS_CLIENT_CA_FILE) or "").split(",") if p],
        help=(
            "mutual TLS: demand a client certificate signed by a CA of this bundle (repeatable; "
            f"{env.TLS_CLIENT_CA_FILE}, comma-separated)"
        ),
    )
    parser.add_argument(
        "--health-port",
        type=int,
        default=int(env.get(env.HEALTH_PORT_VARIABLE) or 0) or None,
        help="also serve /healthz and /readyz over plain HTTP on this port, for probes that present no "
        f"client certificate ({env.HEALTH_PORT_VARIABLE})",
    )


def listening(args: argparse.Namespace, host: str) -> Listening:
    """The server's listening settings from its flags; inconsistent ones stop it."""
    certificate, key = args.tls_cert, args.tls_key
    if (certificate is None) != (key is None):
        raise SystemExit("--tls-cert and --tls-key go together")
    client_cas = tuple(args.tls_client_ca or ())
    if client_cas and certificate is None:
        raise SystemExit("--tls-client-ca needs --tls-cert and --tls-key: mutual TLS is TLS first")
    for path in (certificate, key, *client_cas):
        if path is not None and not Path(path).is_file():
            raise SystemExit(f"no such file: {path}")
    return Listening(host, args.port, certificate, key, client_cas, args.health_port)


class ProbesOnly:
    """An ASGI app that passes the probe paths to `app` and answers 404 to anything else."""

    def __init__(self, app: Asgi) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in PROBE_PATHS:
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


def servers(app: Any, where: Listening, log_config: dict[str, Any] | None) -> list[uvicorn.Server]:
    """The API's server, and under `health_port` the probes' (which leaves signals to the first)."""
    import uvicorn

    options: dict[str, Any] = {}
    if where.certificate is not None and where.key is not None:
        certificate, key, cas = where.certificate, where.key, where.client_cas
        options["ssl_context_factory"] = lambda _config, _default: tls.server_context(certificate, key, cas)
    main = uvicorn.Server(
        uvicorn.Config(
            app, host=where.host, port=where.port, log_config=log_config, access_log=True, **options
        )
    )
    if where.health_port is None:
        return [main]

    class Quiet(uvicorn.Server):
        """A second server in the process: the first one handles the signals that stop both."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    probes = Quiet(
        uvicorn.Config(
            ProbesOnly(app),
            host=where.host,
            port=where.health_port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )
    return [main, probes]


def serve(app: Any, where: Listening, log_config: dict[str, Any] | None) -> None:
    """Serve `app` until a signal stops it."""
    asyncio.run(serve_all(servers(app, where, log_config)))


async def serve_all(running: list[uvicorn.Server]) -> None:
    """Run the servers until the first one stops, then stop the others."""
    main, *others = running
    tasks = [asyncio.create_task(other.serve()) for other in others]
    try:
        await main.serve()
    finally:
        for other in others:
            other.should_exit = True
        await asyncio.gather(*tasks)
