"""The operator's log: Kopf's per-handler chatter only when verbose; never the client's bodies."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator

import pytest

from memory_operator.controller import main
from memory_operator.controller.settings import Options


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    names = ("kopf.objects", "kubernetes")
    saved = (root.level, list(root.handlers), {n: logging.getLogger(n).level for n in names})
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def options(*argv: str) -> Options:
    parser = argparse.ArgumentParser()
    main.configure(parser)
    return Options.from_args(parser.parse_args(list(argv)))


def test_handler_successes_are_not_logged_by_default() -> None:
    main.configure_logging(options())
    objects = logging.getLogger("kopf.objects")
    assert not objects.isEnabledFor(logging.INFO)
    assert objects.isEnabledFor(logging.WARNING)
    assert not logging.getLogger("kubernetes").isEnabledFor(logging.DEBUG)


def test_verbose_logs_everything_but_the_clients_bodies() -> None:
    main.configure_logging(options("--verbose"))
    assert logging.getLogger("kopf.objects").isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("kubernetes").isEnabledFor(logging.DEBUG)
