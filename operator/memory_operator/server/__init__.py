"""The memory server: OpenMemory-compatible REST and MCP on mem0 and Qdrant, with API keys."""
