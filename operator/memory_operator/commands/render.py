"""`memory-operator render`: print the manifests the operator would apply for stores, like `helm template`.

Reads MemoryStores, MemoryPolicies, MemoryBackups, MemoryClients and MemoryErasures from YAML files
(several documents each; `-` is stdin) and prints every child manifest as multi-document YAML, decided by
the operator's own code from those objects: each policy applies to the stores of its namespace whose
labels its selector matches, an unfinished MemoryBackup of a store gets its Job, a store restoring from a
Completed MemoryBackup gets its restore Job and a held server (unless its `status.restoredFrom` says it
is done), each MemoryClient its Secret and an entry in its store's clients Secret, and the oldest
unfinished MemoryErasure of a store its Job (and the store's erasures Secret). Nothing talks to a cluster.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from memory_operator import deployment, images

EXIT_INVALID = 2
DEFAULT_NAMESPACE = "default"

EPILOG = """\
The credentials Secrets (a store's, a MemoryClient's) are rendered with freshly generated keys on every
run. The operator generates them once and never changes them afterwards (clients keep working; a
MemoryClient's key changes when its Secret is deleted); use --no-secrets to leave Secrets out, e.g. to
diff against a cluster. Likewise the certificates of a store with spec.tls and no certificate source of
its own (fresh on every run, generated once and kept by the operator): the checksum annotation of its
Qdrant and server pods follows them.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument(
        "-f",
        "--filename",
        dest="files",
        action="append",
        required=True,
        metavar="FILE",
        help="YAML of MemoryStores, MemoryPolicies, MemoryBackups, MemoryClients, MemoryErasures "
        "(repeatable; - is stdin)",
    )
    parser.add_argument(
        "--no-secrets", action="store_true", help="leave out the Secrets (and so the generated keys)"
    )
    parser.add_argument(
        "--job-image",
        default=images.DEFAULT_JOB_IMAGE,
        help="image of the expiration, backup and restore jobs (default %(default)s)",
    )
    parser.add_argument(
        "--operator-namespace",
        default=None,
        help="namespace of the operator, whose pods the NetworkPolicy lets reach Qdrant (default: any)",
    )
    deployment.add_arguments(parser, from_env=False)


class InvalidInput(Exception):
    """Input that is not a valid store or policy; the message names the file and the field."""


@dataclass(frozen=True)
class Document:
    source: str
    body: dict[str, Any]


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as error:
        raise InvalidInput(f"{path}: {error.strerror}") from None


def documents(paths: Iterable[str]) -> Iterator[Document]:
    """Every non-empty YAML document of the files (kinds other than ours included)."""
    import yaml

    for path in paths:
        source = "<stdin>" if path == "-" else path
        try:
            loaded = list(yaml.safe_load_all(_read(path)))
        except yaml.YAMLError as error:
            raise InvalidInput(f"{source}: not valid YAML: {error}") from None
        for body in loaded:
            if body is None:
                continue
            if not isinstance(body, dict):
                raise InvalidInput(f"{source}: a document is not a mapping")
            yield Document(source, body)


def _field_path(loc: Iterable[int | str]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def validation_message(source: str, kind: str, name: str, error: Any) -> str:
    """One line per problem: file, object and camelCase field path, as the API server would say it."""
    lines = [f"{source}: {kind} {name} is invalid:"]
    for problem in error.errors():
        path = _field_path(problem["loc"]) or "(root)"
        lines.append(f"  {path}: {problem['msg']}")
    return "\n".join(lines)


def _with_default_namespace(body: dict[str, Any]) -> dict[str, Any]:
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and not metadata.get("namespace"):
        return {**body, "metadata": {**metadata, "namespace": DEFAULT_NAMESPACE}}
    return body


KINDS = ("MemoryStore", "MemoryPolicy", "MemoryBackup", "MemoryClient", "MemoryErasure")


def parse(docs: Iterable[Document]) -> dict[str, list[dict[str, Any]]]:
    """The MemoryStores, MemoryPolicies and MemoryBackups among the documents, validated, by kind
    (each as its body, in its namespace)."""
    from pydantic import ValidationError

    from memory_operator.api import (
        GROUP,
        MemoryBackup,
        MemoryClient,
        MemoryErasure,
        MemoryPolicy,
        MemoryStore,
    )

    models: dict[str, Any] = {
        "MemoryStore": MemoryStore,
        "MemoryPolicy": MemoryPolicy,
        "MemoryBackup": MemoryBackup,
        "MemoryClient": MemoryClient,
        "MemoryErasure": MemoryErasure,
    }
    found: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    for doc in docs:
        kind = doc.body.get("kind")
        api_version = str(doc.body.get("apiVersion", ""))
        if kind not in models or not api_version.startswith(f"{GROUP}/"):
            continue
        name = str((doc.body.get("metadata") or {}).get("name", "<unnamed>"))
        body = _with_default_namespace(doc.body)
        try:
            models[kind].model_validate(body)
        except ValidationError as error:
            raise InvalidInput(validation_message(doc.source, kind, name, error)) from None
        found[kind].append(body)
    return found


def render_documents(
    found: dict[str, list[dict[str, Any]]], settings: Any, with_secrets: bool
) -> list[dict[str, Any]]:
    """Every child manifest of every store, as the operator decides them from these objects alone."""
    from memory_operator.api import MemoryStore
    from memory_operator.controller import decide
    from memory_operator.controller.snapshot import Snapshot
    from memory_operator.render import Credentials

    manifests: list[dict[str, Any]] = []
    client_secrets = _client_secrets(found.get("MemoryClient", []), with_secrets)
    manifests += client_secrets.values()
    for body in found["MemoryStore"]:
        namespace = body["metadata"]["namespace"]
        snap = Snapshot(
            body=body,
            policies=[p for p in found["MemoryPolicy"] if p["metadata"]["namespace"] == namespace],
            backups=[b for b in found["MemoryBackup"] if b["metadata"]["namespace"] == namespace],
            clients=[
                c
                for c in found.get("MemoryClient", [])
                if c["metadata"]["namespace"] == namespace and c["spec"]["store"] == body["metadata"]["name"]
            ],
            erasures=[e for e in found.get("MemoryErasure", []) if e["metadata"]["namespace"] == namespace],
            secrets={
                s["metadata"]["name"]: s
                for s in client_secrets.values()
                if s["metadata"]["namespace"] == namespace
            },
        )
        store = MemoryStore.model_validate(body)
        decided = decide.steps(store, snap, decide.previous_status(body), settings)
        keys = Credentials.generate() if with_secrets else None
        manifests += decide.children_of(store, snap, settings, keys, decided)
    return manifests


def _client_secrets(
    clients: list[dict[str, Any]], with_secrets: bool
) -> dict[tuple[str, str], dict[str, Any]]:
    """Each MemoryClient's Secret with a freshly generated key (the operator makes each key once)."""
    if not with_secrets:
        return {}
    from memory_operator.api import MemoryClient
    from memory_operator.controller.clients import generate_key
    from memory_operator.render import clients as render_clients

    rendered = {}
    for body in clients:
        secret = render_clients.client_secret(MemoryClient.model_validate(body), generate_key())
        rendered[(secret["metadata"]["namespace"], secret["metadata"]["name"])] = secret
    return rendered


def run(args: argparse.Namespace) -> int:
    import yaml

    from memory_operator.render import RenderSettings

    try:
        found = parse(documents(args.files))
    except InvalidInput as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INVALID
    if not found["MemoryStore"]:
        print("error: no MemoryStore (memory-operator.io) found in the input", file=sys.stderr)
        return EXIT_INVALID
    settings = RenderSettings(
        job_image=args.job_image,
        operator_namespace=args.operator_namespace or None,
        **deployment.render_settings(args),
    )
    manifests = render_documents(found, settings, with_secrets=not args.no_secrets)
    sys.stdout.write(yaml.safe_dump_all(manifests, sort_keys=False, explicit_start=True))
    return 0
