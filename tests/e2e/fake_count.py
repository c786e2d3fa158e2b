"""A fake of Qdrant's count endpoint for many stores at once, on 127.0.0.1.

The operator's Qdrant URL template is `<url>/{namespace}/{name}`, so each store has its own counts:
`POST /<namespace>/<store>/collections/<collection>/points/count` answers `{"result": {"count": N}}`
as Qdrant does, checks the `api-key` header against the one set for the store (401 otherwise), and
answers 500 for a store told to fail and 404 for one it does not know.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from support.http import JsonHandler, LoopbackServer

PATH = re.compile(r"^/(?P<namespace>[^/]+)/(?P<name>[^/]+)/collections/(?P<collection>[^/]+)/points/count$")


@dataclass
class StoreCount:
    count: int | None
    """None: answer 500."""
    api_key: str | None = None
    """The key the store's Qdrant expects; None accepts any."""
    requests: list[dict[str, Any]] = field(default_factory=list)


class FakeCount:
    def __init__(self) -> None:
        self.stores: dict[tuple[str, str], StoreCount] = {}
        self.lock = threading.Lock()
        fake = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                match = PATH.match(self.path)
                with fake.lock:
                    entry = fake.stores.get((match["namespace"], match["name"])) if match else None
                    if entry is not None:
                        entry.requests.append({"body": body, "api-key": self.headers.get("api-key")})
                if match is None or entry is None:
                    return self.answer(404, {"status": {"error": "Not found"}, "time": 0})
                if entry.api_key is not None and self.headers.get("api-key") != entry.api_key:
                    return self.answer(401, {"status": {"error": "Invalid api-key"}, "time": 0})
                if entry.count is None:
                    return self.answer(500, {"status": {"error": "Service internal error"}, "time": 0})
                return self.answer(200, {"result": {"count": entry.count}, "status": "ok", "time": 0})

        self.http = LoopbackServer(Handler)

    @property
    def url(self) -> str:
        return self.http.url

    @property
    def template(self) -> str:
        """The operator's `MEMORY_OPERATOR_QDRANT_URL_TEMPLATE` pointing here."""
        return self.url + "/{namespace}/{name}"

    def set(self, namespace: str, name: str, count: int | None, api_key: str | None = None) -> StoreCount:
        with self.lock:
            entry = self.stores.setdefault((namespace, name), StoreCount(count, api_key))
            entry.count = count
            entry.api_key = api_key if api_key is not None else entry.api_key
            return entry

    def start(self) -> FakeCount:
        self.http.start()
        return self

    def stop(self) -> None:
        self.http.stop()
