"""The collection job: the store's Qdrant collection as the spec says, made by the operator's side."""
