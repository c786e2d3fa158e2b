"""Default container images of the managed components.

Each is pinned on its own and changes only when that component's image changes, never with the
operator's version: an operator upgrade must not roll the pods it manages.
"""

DEFAULT_QDRANT_IMAGE = "docker.io/qdrant/qdrant:v1.16.3-unprivileged"
DEFAULT_BUILTIN_SERVER_IMAGE = "ghcr.io/memory-operator/memory-operator:server-1"
DEFAULT_OPENMEMORY_IMAGE = "docker.io/mem0/openmemory-mcp:v0.1.1"
# The expiration and backup jobs run the same image as the builtin server; the operator passes its own
# image instead when deployed (CronJob template changes start no pod, they apply to the next run).
DEFAULT_JOB_IMAGE = DEFAULT_BUILTIN_SERVER_IMAGE
