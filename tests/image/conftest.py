"""The two images, built once per session exactly as users build them, and a container of each."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .buildah import Container, Image, build, container


@pytest.fixture(scope="session")
def server_image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    """With the local embedding model: the builtin memory server's image."""
    return Image(build(tmp_path_factory.mktemp("build") / "server-image.log", "--embedder"))


@pytest.fixture(scope="session")
def operator_image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    """Without it: the operator's and the jobs' image, and servers with a remote embedder."""
    return Image(build(tmp_path_factory.mktemp("build") / "operator-image.log"))


@pytest.fixture(scope="session", params=["operator", "server"])
def image(request: pytest.FixtureRequest) -> Image:
    built: Image = request.getfixturevalue(f"{request.param}_image")
    return built


@pytest.fixture(scope="session")
def server_container(server_image: Image) -> Iterator[Container]:
    with container(server_image) as made:
        yield made


@pytest.fixture(scope="session")
def operator_container(operator_image: Image) -> Iterator[Container]:
    with container(operator_image) as made:
        yield made
