"""Names the renderers, the controller and the jobs share: labels, annotations and Secret keys.

Children carry these labels so the operator finds them (its watches select `managed-by` on the
server); a name defined twice would let the two sides drift apart.
"""

from __future__ import annotations

PREFIX = "memory-operator.io"

# Labels of every child.
MANAGED_BY_KEY = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "memory-operator"
MANAGED_BY = {MANAGED_BY_KEY: MANAGED_BY_VALUE}
NAME_KEY = "app.kubernetes.io/name"
COMPONENT_KEY = "app.kubernetes.io/component"
STORE = f"{PREFIX}/store"
# On expiration CronJobs and their Jobs: the MemoryPolicy they enforce.
POLICY = f"{PREFIX}/policy"
# On backup Jobs: the MemoryBackup they take.
BACKUP = f"{PREFIX}/backup"
# On the restore Job: the MemoryBackup it restores.
RESTORE = f"{PREFIX}/restore-from"
# On the collection Job: a digest of the collection settings it applies.
COLLECTION_SETTINGS = f"{PREFIX}/collection-settings"
# On the upgrade check Jobs of a rolling Qdrant upgrade and the MemoryBackup taken before it: a digest
# of the Qdrant image the store moves to.
QDRANT_UPGRADE = f"{PREFIX}/qdrant-upgrade"
# On MemoryBackups the operator creates on the store's schedule.
SCHEDULED = f"{PREFIX}/scheduled"
# On erasure Jobs: the MemoryErasure they run.
ERASURE = f"{PREFIX}/erasure"
# On a MemoryClient's Secret: the client's name.
CLIENT = f"{PREFIX}/client"
# On volumes and backups kept after their store was deleted (`deletionPolicy: Retain`): the store's name.
RETAINED_FROM = f"{PREFIX}/retained-from"

# Kopf's finalizer (on stores, and on the backups and erasures its timers run for). A store's first
# reconcile puts it on the store itself, with the store's first children (controller/decide.py).
FINALIZER = f"{PREFIX}/finalizer"

# Annotations.
PAUSED = f"{PREFIX}/paused"
# On a store: change its value to run a failed restore again.
RETRY_RESTORE = f"{PREFIX}/retry-restore"
# On the restore Job: the `retry-restore` value it was made for.
RESTORE_ATTEMPT = f"{PREFIX}/restore-attempt"
# On an erasure Job: which run of its erasure it is (1, 2, ...; it runs again while the store is down).
ERASURE_ATTEMPT = f"{PREFIX}/erasure-attempt"
# On every child: a digest of the manifest the operator applied.
APPLIED_HASH = f"{PREFIX}/applied-hash"
# On pod templates: a digest of the ConfigMap data the pods read (a change rolls the pods).
CONFIG_CHECKSUM = f"{PREFIX}/config-checksum"

# Keys of the Secrets the operator generates.
QDRANT_API_KEY = "api-key"
