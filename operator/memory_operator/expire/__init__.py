"""The expiration job: purge the memories a MemoryPolicy's retention rules say must go.

`rules` turns a policy into Qdrant filters (pure), `purge` counts and deletes by those filters,
`openmemory` deletes through OpenMemory's API for stores of that flavor, `summary` is the JSON the
job prints and leaves as its termination message, and `main` is the `expire` command.
"""
