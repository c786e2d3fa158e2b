"""The memory-operator.io/v1alpha1 API, modelled with pydantic; the CRDs are generated from it."""

from memory_operator.api.backup import MemoryBackup, MemoryBackupSpec, MemoryBackupStatus
from memory_operator.api.client import MemoryClient, MemoryClientSpec, MemoryClientStatus
from memory_operator.api.common import API_VERSION, GROUP, VERSION
from memory_operator.api.erasure import MemoryErasure, MemoryErasureSpec, MemoryErasureStatus
from memory_operator.api.policy import MemoryPolicy, MemoryPolicySpec, MemoryPolicyStatus
from memory_operator.api.store import MemoryStore, MemoryStoreSpec, MemoryStoreStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "MemoryBackup",
    "MemoryBackupSpec",
    "MemoryBackupStatus",
    "MemoryClient",
    "MemoryClientSpec",
    "MemoryClientStatus",
    "MemoryErasure",
    "MemoryErasureSpec",
    "MemoryErasureStatus",
    "MemoryPolicy",
    "MemoryPolicySpec",
    "MemoryPolicyStatus",
    "MemoryStore",
    "MemoryStoreSpec",
    "MemoryStoreStatus",
]
