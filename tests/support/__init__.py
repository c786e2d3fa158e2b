"""Pieces the test areas share: Kubernetes object semantics and small loopback HTTP servers."""
