"""memory-operator: long-term memory for AI agents on Kubernetes."""

__version__ = "0.1.0"
