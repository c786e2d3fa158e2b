"""Default container images of the managed components, and moving them to another registry.

Each is pinned on its own and changes only when that component's image changes, never with the
operator's version: an operator upgrade must not roll the pods it manages.
"""

DEFAULT_QDRANT_IMAGE = "docker.io/qdrant/qdrant:v1.16.3-unprivileged"
DEFAULT_BUILTIN_SERVER_IMAGE = "ghcr.io/memory-operator/memory-operator:server-1"
DEFAULT_OPENMEMORY_IMAGE = "docker.io/mem0/openmemory-mcp:v0.1.1"
# The expiration and backup jobs run the same image as the builtin server; the operator passes its own
# image instead when deployed (CronJob template changes start no pod, they apply to the next run).
DEFAULT_JOB_IMAGE = DEFAULT_BUILTIN_SERVER_IMAGE


def _has_registry(first_component: str) -> bool:
    """Whether the first path component of a reference names a registry, by the rule Docker and
    containerd apply: a host has a dot or a port, or is `localhost`; otherwise it is Docker Hub's path."""
    return "." in first_component or ":" in first_component or first_component == "localhost"


def relocate(image: str, registry: str | None) -> str:
    """`image` pulled from `registry` instead: its registry replaced (or added, for a Docker Hub short
    name), its path, tag and digest kept. `docker.io/qdrant/qdrant:v1` with `mirror.example.com/hub`
    becomes `mirror.example.com/hub/qdrant/qdrant:v1`. No registry: `image` unchanged."""
    if not registry:
        return image
    first, _, rest = image.partition("/")
    path = rest if rest and _has_registry(first) else image
    return f"{registry.rstrip('/')}/{path}"


def tag_version(image: str) -> tuple[int, int, int] | None:
    """The version an image's tag names: (1, 16, 3) of `qdrant/qdrant:v1.16.3-unprivileged`; `None` for
    a tag that names none (`latest`, `dev`) or a reference by digest alone."""
    reference = image.split("@", 1)[0]
    last = reference.rsplit("/", 1)[-1]
    if ":" not in last:
        return None
    tag = last.split(":", 1)[1].lstrip("v").split("-", 1)[0]
    parts = tag.split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts[:3]):
        return None
    major, minor, *rest = (int(p) for p in parts[:3])
    return major, minor, rest[0] if rest else 0
