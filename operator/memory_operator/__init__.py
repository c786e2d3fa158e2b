"""memory-operator: long-term memory for AI agents on Kubernetes."""

from memory_operator import lazy_kubernetes

__version__ = "0.1.0"

# Before anything imports the Kubernetes client (Kopf does): whatever runs memory-operator code loads
# only the client classes it uses.
lazy_kubernetes.install()
