"""The operator: Kopf handlers that keep MemoryStores, MemoryPolicies and MemoryBackups converged."""
