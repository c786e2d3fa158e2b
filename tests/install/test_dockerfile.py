"""The Dockerfile's invariants, read from the file (tests/image builds and runs it for real)."""

from __future__ import annotations

import json
import re
import shlex
import tomllib

import yaml

from install.helpers import CHART, ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()
BUILD_TOOLS = ("gcc", "g++", "build-essential", "binutils", "make", "clang", "git", "pip", "python3-venv")
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


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


def stage(name: str) -> list[tuple[str, str]]:
    return next(s for s in stages() if s[0][1].endswith(f" AS {name}"))


def build_args(instructions_: list[tuple[str, str]] | None = None) -> dict[str, str]:
    args = {}
    for keyword, rest in instructions_ if instructions_ is not None else instructions():
        if keyword == "ARG":
            name, _, value = rest.partition("=")
            args[name] = value
    return args


def runs(stage_instructions: list[tuple[str, str]]) -> str:
    return " ".join(rest for keyword, rest in stage_instructions if keyword == "RUN")


def test_base_image_is_debian_slim_with_its_own_python() -> None:
    assert build_args()["BASE_IMAGE"] == "debian:bookworm-slim"
    assert "latest" not in DOCKERFILE
    froms = [rest.split()[0] for keyword, rest in instructions() if keyword == "FROM"]
    assert froms == ["${BASE_IMAGE}", "runtime", "runtime"]
    installed = re.search(r"apt-get install --yes --no-install-recommends ([^;]+);", runs(stage("runtime")))
    assert installed and installed.group(1).split() == ["python3", "ca-certificates"]


def test_multi_stage_and_the_final_stage_copies_the_venv_only() -> None:
    final = stages()[-1]
    assert [keyword for keyword, _ in final].count("RUN") == 0, "the final stage installs nothing"
    copies = [rest for keyword, rest in final if keyword == "COPY"]
    assert copies == ["--from=build /opt/memory-operator /opt/memory-operator"]
    runtime = runs(stage("runtime"))
    for tool in BUILD_TOOLS:
        assert not re.search(rf"(?<![\w-]){re.escape(tool)}(?![\w-])", runtime), tool
    assert "pip uninstall --yes pip" in runs(stage("build")), "pip leaves the virtual environment"


def test_copied_paths_exist_and_pass_the_dockerignore() -> None:
    ignore = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")]
    for keyword, rest in instructions():
        if keyword == "COPY" and not rest.startswith("--from"):
            *sources, _ = shlex.split(rest)
            for source in sources:
                assert (ROOT / source).exists(), source
                assert any(source.startswith(pattern[1:]) for pattern in ignore), source


def test_final_stage_runs_as_numeric_non_root_user() -> None:
    users = [rest for keyword, rest in stages()[-1] if keyword == "USER"]
    assert users == ["10001:10001"]
    assert "useradd --system --uid 10001 --gid 10001" in runs(stage("runtime"))


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
    assert settings["HOME"] == "/tmp"
    assert settings["CUDA_VISIBLE_DEVICES"] == "", "the image's torch has no GPU libraries"


def test_embedding_model_is_optional_with_the_torch_of_the_dev_environment() -> None:
    args = build_args()
    assert args["INCLUDE_EMBEDDING_MODEL"] == "false"
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert f'"torch=={args["TORCH_VERSION"]}"' in setup
    assert args["TORCH_INDEX_URL"] == "", "the configured index by default: the build works where tests run"
    build = runs(stage("build"))
    assert '"$INCLUDE_EMBEDDING_MODEL" = "true"' in build
    assert '${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==$TORCH_VERSION"' in build
    assert "scripts/image/cpu-only-torch.py" in build


def test_pip_settings_are_build_arguments_of_the_build_stage_only() -> None:
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST", "PIP_FIND_LINKS", "PIP_CERT"):
        assert build_args(stage("build"))[name] == ""
        assert name not in build_args(stages()[-1])
    assert "PIP_NO_CACHE_DIR" not in DOCKERFILE, "the build machine's pip cache is mounted in"


def test_oci_labels_agree_with_the_package_and_the_chart() -> None:
    labels_text = " ".join(rest for keyword, rest in stages()[-1] if keyword == "LABEL")
    labels = dict(item.split("=", 1) for item in shlex.split(labels_text))
    for label in ("title", "description", "source", "licenses", "version", "revision"):
        assert f"org.opencontainers.image.{label}" in labels
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert build_args(stages()[-1])["VERSION"] == PROJECT["version"] == chart["appVersion"]
    assert labels["org.opencontainers.image.licenses"] == PROJECT["license"]["text"]
    assert labels["org.opencontainers.image.source"] == chart["home"]


def test_dockerignore_sends_only_the_package_and_the_build_scripts() -> None:
    text = (ROOT / ".dockerignore").read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[0] == "*"
    assert {"!pyproject.toml", "!README.md", "!operator/", "!scripts/image/"} <= set(lines)
