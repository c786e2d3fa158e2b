"""Erasure of one subject's memories: the erasure job (`memory-operator erase`) and what restores re-apply."""
