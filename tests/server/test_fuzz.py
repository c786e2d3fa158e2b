"""Fuzzing the server against its own OpenAPI document: no 500, every answer as declared.

schemathesis generates valid and invalid requests for every operation (and undeclared methods,
which must get 405) and checks each answer: not a server error, a declared status code, content
type and schema, invalid input refused and valid input accepted. The server is a real one (mem0,
Qdrant local mode, the local model) with a store of its own; examples are bounded per operation.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance

from memory_operator.server.app import ServiceSlot, create_app
from memory_operator.server.auth import ApiKeys
from memory_operator.server.build import build_service
from memory_operator.server.config import ServerConfig
from memory_operator.server.metrics import ServerMetrics

from .conftest import API_KEY, LiveServer, ServerThread, local_settings

pytestmark = pytest.mark.slow
EXAMPLES_PER_OPERATION = 25
MAX_BODY_BYTES = 64 * 1024
# Operations that require one of several fields (their descriptions say which), a rule OpenAPI
# cannot state across a body, its filters and a query: a schema-valid request without any may get 422.
ONE_OF_SEVERAL_FIELDS = {
    "POST /api/v1/memories/actions/pause",
    "POST /api/v1/memories/actions/erase",
    "POST /memories",
    "DELETE /memories",
    "POST /search",
    "POST /v1/memories/",
    "GET /v1/memories/",
    "DELETE /v1/memories/",
    "POST /v1/memories/search/",
    "POST /v2/memories/",
    "POST /v2/memories/search/",
    "POST /v3/memories/",
    "POST /v3/memories/add/",
    "POST /v3/memories/search/",
}
# Operations whose valid input the schema cannot describe: an import's file must be an export,
# which no schema of a string or a form states.
UNDESCRIBED_INPUT = {"POST /api/v1/backup/import"}


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory, embedding_model: Any) -> Iterator[LiveServer]:
    settings_ = local_settings(Path(tmp_path_factory.mktemp("fuzzed")))
    metrics = ServerMetrics()
    service = build_service(settings_, ServerConfig(), metrics, embedding_model=embedding_model)
    slot = ServiceSlot(build=lambda: service, service=service)
    with ServerThread(slot, metrics, max_body_bytes=MAX_BODY_BYTES) as live:
        yield live


def openapi_document() -> dict[str, Any]:
    """The document the server serves, made without serving (schemathesis reads it at collection)."""
    slot = ServiceSlot(build=lambda: None)  # type: ignore[arg-type,return-value]
    app = create_app(slot, ApiKeys(API_KEY), ServerMetrics(), MAX_BODY_BYTES, host="127.0.0.1")
    return app.openapi()


# What the server answers for refused input, and what it may answer for valid input that is still
# too large for its body limit (the schema bounds fields one by one, not their sum).
REJECTIONS = ["400", "401", "403", "404", "405", "413", "422"]
ACCEPTANCES = ["2xx", "401", "403", "404", "413"]
CONFIG = SchemathesisConfig.from_dict(
    {
        # The key goes through the document's security scheme, so that schemathesis knows which
        # requests carry it (and which it sends without, expecting 401).
        "auth": {"openapi": {"HTTPBearer": {"bearer": API_KEY}}},
        "checks": {
            "negative_data_rejection": {"expected-statuses": REJECTIONS},
            "positive_data_acceptance": {"expected-statuses": ACCEPTANCES},
        },
    }
)
schema = schemathesis.openapi.from_dict(openapi_document(), config=CONFIG)


def test_the_fuzzed_document_is_the_served_one(fuzzed_server: LiveServer) -> None:
    with fuzzed_server.client(key=None) as client:
        assert client.get("/openapi.json").json() == openapi_document()


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck))
def test_openapi_conformance(case: Any, fuzzed_server: LiveServer) -> None:
    label = case.operation.label
    excluded = [positive_data_acceptance] if label in ONE_OF_SEVERAL_FIELDS | UNDESCRIBED_INPUT else []
    case.call_and_validate(base_url=fuzzed_server.url, excluded_checks=excluded)


def test_the_fuzzing_got_past_authentication(fuzzed_server: LiveServer) -> None:
    """Runs after the fuzzing (file order): most answers must come from the store, not from the
    key check, or the conformance above would hold for 401s alone."""
    samples = [s for metric in fuzzed_server.metrics.requests.collect() for s in metric.samples]
    answered = [s for s in samples if s.name.endswith("_total")]
    if sum(s.value for s in answered) < 100:
        pytest.skip("the fuzzing did not run in this session")
    succeeded = {s.labels["route"] for s in answered if s.labels["status"] == "200"}
    assert {"/search", "/memories", "/api/v1/memories/", "/api/v1/memories/filter"} <= succeeded
