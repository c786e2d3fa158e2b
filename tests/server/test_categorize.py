"""With a language model, new memories are filed under the configured categories and expire as their
category says. The model is an OpenAI-compatible stub on loopback, reached through mem0's LLM client."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from memory_operator.server.app import ServiceSlot
from memory_operator.server.build import build_service
from memory_operator.server.categorize import PROMPT_HEADER, categories_in, prompt
from memory_operator.server.config import ServerConfig
from memory_operator.server.metrics import ServerMetrics
from memory_operator.server.settings import ModelSettings, ServerSettings
from support.http import JsonHandler, LoopbackServer

from .conftest import API_KEY, READ_ONLY_KEY, LiveServer, ServerThread

pytestmark = pytest.mark.slow
OUTAGE = "The payments API had an outage on Monday: the database failover failed."
EXTRACTED = "Payments API outage on Monday caused by a failed database failover"
REFUSED_TEXT = "the model refuses this one"


class StubModel(JsonHandler):
    """OpenAI's chat completions: files texts by keyword, extracts one fixed fact for mem0."""

    requests: list[dict[str, Any]] = []
    lock = threading.Lock()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        request = json.loads(self.rfile.read(length))
        with self.lock:
            self.requests.append(request)
        system, user = request["messages"][0]["content"], request["messages"][-1]["content"]
        if not self.path.endswith("/chat/completions"):
            self.answer(404, {"error": {"message": "no such path"}})
        elif system.startswith(PROMPT_HEADER):
            if user == REFUSED_TEXT:
                self.answer(400, {"error": {"message": "refused", "type": "invalid_request_error"}})
                return
            names = [
                name
                for word, name in (("outage", "incident"), ("freeze", "temporary"))
                if word in user.lower()
            ]
            self.answer(200, completion(json.dumps({"categories": names})))
        else:
            self.answer(200, completion(json.dumps({"memory": [{"text": EXTRACTED}]})))


def completion(content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 0,
        "model": "stub",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


@pytest.fixture(scope="module")
def model() -> Iterator[LoopbackServer]:
    stub = LoopbackServer(StubModel).start()
    yield stub
    stub.stop()


@pytest.fixture(scope="module")
def with_llm(
    tmp_path_factory: pytest.TempPathFactory, embedding_model: Any, model: LoopbackServer
) -> Iterator[LiveServer]:
    settings = ServerSettings(
        api_key=API_KEY,
        read_only_api_key=READ_ONLY_KEY,
        qdrant_path=Path(tmp_path_factory.mktemp("with-llm")),
        host="127.0.0.1",
        llm=ModelSettings(provider="openai", model="stub", api_key="stub-key", base_url=f"{model.url}/v1"),
    )
    config = ServerConfig.model_validate(
        {"categories": [{"name": "preference", "description": "What someone likes or prefers"}]}
    )
    metrics = ServerMetrics()
    service = build_service(settings, config, metrics, embedding_model=embedding_model)
    with ServerThread(ServiceSlot(build=lambda: service, service=service), metrics) as live:
        yield live


def categorization_prompts() -> list[dict[str, Any]]:
    return [r for r in StubModel.requests if r["messages"][0]["content"].startswith(PROMPT_HEADER)]


def test_an_incident_gets_90_days_without_the_caller_naming_it(with_llm: LiveServer, user: str) -> None:
    StubModel.requests.clear()
    today = dt.datetime.now(dt.UTC).date()
    with with_llm.client() as client:
        response = client.post("/api/v1/memories/", json={"user_id": user, "text": OUTAGE})
    assert response.status_code == 200, response.text
    created = response.json()
    assert created["content"] == EXTRACTED, "the model extracted the fact (infer defaults to true)"
    assert created["categories"] == ["incident"]
    assert created["expiration_date"] == (today + dt.timedelta(days=90)).isoformat()

    [asked] = categorization_prompts()
    system = asked["messages"][0]["content"]
    assert "- preference: What someone likes or prefers" in system, (
        "configured descriptions are in the prompt"
    )
    assert "- incident: Something that went wrong" in system
    assert asked["messages"][1]["content"] == EXTRACTED and asked["response_format"] == {
        "type": "json_object"
    }
    payload = with_llm.slot.get().client.retrieve("memories", [created["id"]])[0].payload
    assert payload is not None and payload["categories"] == ["incident"]


async def test_mcp_adds_are_filed_too(with_llm: LiveServer, user: str) -> None:
    from .test_mcp import call

    StubModel.requests.clear()
    added = json.loads(
        await call(with_llm, user, "add_memories", {"text": "Deploy freeze until Friday", "infer": False})
    )
    result = added["results"][0]
    assert result["memory"] == "Deploy freeze until Friday", "infer=false stores the text as given"
    assert result["categories"] == ["temporary"]
    assert len(StubModel.requests) == 1, "no extraction call, one categorization call"
    with with_llm.client() as client:
        got = client.get(f"/api/v1/memories/{result['id']}", params={"user_id": user}).json()
    assert got["expiration_date"] == (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=7)).isoformat()


def test_the_callers_categories_win_and_a_model_failure_loses_nothing(
    with_llm: LiveServer, user: str
) -> None:
    StubModel.requests.clear()
    with with_llm.client() as client:
        named = client.post(
            "/memories",
            json={
                "messages": "an outage, filed by hand",
                "user_id": user,
                "infer": False,
                "categories": ["preference"],
            },
        ).json()["results"][0]
        assert named["categories"] == ["preference"] and named["expiration_date"] is None
        assert categorization_prompts() == []
        refused = client.post("/memories", json={"messages": REFUSED_TEXT, "user_id": user, "infer": False})
        assert refused.status_code == 200, refused.text
        assert refused.json()["results"][0]["categories"] == []
        metrics = client.get("/metrics").text
    assert "memory_server_categorization_failures_total 1.0" in metrics


def test_answers_are_kept_only_where_they_name_configured_categories() -> None:
    names = ["incident", "temporary"]
    assert categories_in('{"categories": ["Incident", "made-up", "temporary"]}', names) == names
    assert categories_in('```json\n{"categories": ["incident"]}\n```', names) == ["incident"]
    for answer in ("not json", '{"categories": "incident"}', "[]", None, '{"other": 1}', "x" * 20_000):
        assert categories_in(answer, names) == []
    assert "- incident: incident" in prompt([("incident", None)])


def test_without_a_model_nothing_is_asked(server: LiveServer, user: str, model: LoopbackServer) -> None:
    StubModel.requests.clear()
    with server.client() as client:
        added = client.post("/api/v1/memories/", json={"user_id": user, "text": OUTAGE}).json()
    assert added["content"] == OUTAGE and added["categories"] == [] and added["expiration_date"] is None
    assert StubModel.requests == []
    assert httpx.get(f"{model.url}/unused").status_code == 501
