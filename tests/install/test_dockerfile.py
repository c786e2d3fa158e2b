"""The Dockerfile's invariants: pinned base, non-root numeric user, the entry point, a lean final stage."""

from __future__ import annotations

import json
import re
import shlex

from install.helpers import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()
BUILD_TOOLS = ("gcc", "g++", "build-essential", "make", "clang", "git", "pip wheel")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    kept = [line for line in DOCKERFILE.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(kept))
    result = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def build_args() -> dict[str, str]:
    args = {}
    for keyword, rest in instructions():
        if keyword == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            args[name] = value
    return args


def test_base_image_is_a_pinned_slim_python() -> None:
    base = build_args()["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base), base
    assert "latest" not in DOCKERFILE
    assert all(rest.split()[0] == "${PYTHON_IMAGE}" for keyword, rest in instructions() if keyword == "FROM")


def test_multi_stage_and_the_final_stage_copies_the_venv_only() -> None:
    build, final = stages()
    assert build[0][1].endswith("AS build")
    copies = [rest for keyword, rest in final if keyword == "COPY"]
    assert copies == ["--from=build /opt/memory-operator /opt/memory-operator"]
    final_runs = " ".join(rest for keyword, rest in final if keyword == "RUN")
    for tool in BUILD_TOOLS:
        assert not re.search(rf"\b{re.escape(tool)}\b", final_runs), tool
    assert "apt-get install" not in final_runs and "pip install" not in final_runs


def test_final_stage_runs_as_numeric_non_root_user() -> None:
    final = stages()[-1]
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users, "the final stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) == 10001


def test_entrypoint_and_default_command() -> None:
    final = dict(stages()[-1])
    assert json.loads(final["ENTRYPOINT"]) == ["memory-operator"]
    assert json.loads(final["CMD"]) == ["run"]


def test_runtime_environment() -> None:
    env = " ".join(rest for keyword, rest in stages()[-1] if keyword == "ENV")
    settings = dict(item.split("=", 1) for item in shlex.split(env))
    assert settings["HF_HUB_OFFLINE"] == "1"
    assert settings["MEM0_TELEMETRY"] == "false"
    assert settings["PYTHONDONTWRITEBYTECODE"] == "1"


def test_embedding_model_is_optional_with_cpu_torch() -> None:
    args = build_args()
    assert args["INCLUDE_EMBEDDING_MODEL"] == "false"
    assert args["TORCH_INDEX_URL"].endswith("/whl/cpu")
    build = " ".join(rest for keyword, rest in stages()[0] if keyword == "RUN")
    assert '"$INCLUDE_EMBEDDING_MODEL" = "true"' in build
    assert '--index-url "$TORCH_INDEX_URL" "torch==$TORCH_VERSION"' in build
    assert "[embedded]" in build


def test_oci_labels() -> None:
    labels = " ".join(rest for keyword, rest in stages()[-1] if keyword == "LABEL")
    for label in ("title", "description", "source", "licenses", "version", "revision"):
        assert f"org.opencontainers.image.{label}=" in labels


def test_dockerignore_sends_only_the_package() -> None:
    text = (ROOT / ".dockerignore").read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[0] == "*"
    assert {"!pyproject.toml", "!README.md", "!operator/"} <= set(lines)
