"""`spec.server.cors`: the builtin server's allowed browser origins, passed as one variable it reads."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from memory_operator import env
from memory_operator.server.main import origins_of
from render.helpers import make_store, one, render


def server_env(spec: dict[str, Any]) -> dict[str, str]:
    container = one(render(spec), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return {v["name"]: v.get("value") for v in container["env"]}


def test_cors_is_off_unless_origins_are_given() -> None:
    assert env.CORS_ALLOWED_ORIGINS not in server_env({})


def test_allowed_origins_reach_the_server_as_given() -> None:
    origins = ["http://localhost:3000", "https://memory.example.com:8443"]
    value = server_env({"server": {"cors": {"allowedOrigins": origins}}})[env.CORS_ALLOWED_ORIGINS]
    assert origins_of(value) == tuple(origins), "the server reads back exactly the spec's origins"


@pytest.mark.parametrize(
    "origins",
    [
        [],
        ["http://localhost:3000/"],
        ["localhost:3000"],
        ["http://a.example/path"],
        ["ftp://a.example"],
        ["http://a b"],
    ],
)
def test_what_is_not_an_origin_is_refused(origins: list[str]) -> None:
    with pytest.raises(ValidationError, match=r"allowedOrigins|allowed_origins"):
        make_store({"server": {"cors": {"allowedOrigins": origins}}})


def test_any_origin_may_be_allowed() -> None:
    assert server_env({"server": {"cors": {"allowedOrigins": ["*"]}}})[env.CORS_ALLOWED_ORIGINS] == "*"
