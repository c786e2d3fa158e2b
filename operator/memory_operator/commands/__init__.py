"""Subcommands of the `memory-operator` CLI that need no heavy dependency."""
