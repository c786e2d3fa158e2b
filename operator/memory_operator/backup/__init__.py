"""The `backup` and `restore` roles: Qdrant collection snapshots to and from a backup destination."""
