"""Building the image with scripts/build-image.sh and running it with buildah: no daemon, as root.

A container runs one role at a time with `buildah run` (the image's user and environment, the host's
network, so a server is reached on 127.0.0.1). For a read-only root file system, the container's root is
bind-mounted read-only in a mount namespace of its own, with a tmpfs on /tmp (as the pods have), and the
command runs there chrooted under the image's user and environment: what a container runtime does with
`readOnlyRootFilesystem: true`.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 3600.0
RUN_TIMEOUT = 300.0
READY_TIMEOUT = 180.0
# The isolation and storage of scripts/build-image.sh.
# A mount namespace of its own, so that the read-only mounts stay in it.
UNSHARE = ["unshare", "--mount", "--propagation", "private", "--fork"]
BUILDAH_ENV = {**os.environ, "BUILDAH_ISOLATION": "chroot"}
STORAGE = ["--storage-driver", os.environ["STORAGE_DRIVER"]] if os.environ.get("STORAGE_DRIVER") else []


def buildah(*args: str, timeout: float = RUN_TIMEOUT, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["buildah", *STORAGE, *args], capture_output=True, text=True, env=BUILDAH_ENV, timeout=timeout
    )
    if check and result.returncode != 0:
        pytest.fail(f"buildah {shlex.join(args)} exited {result.returncode}:\n{result.stderr}", pytrace=False)
    return result


def build(log: Path, *options: str) -> str:
    """Builds the image as a user would (scripts/build-image.sh); returns its name. Fails, never skips."""
    with log.open("w") as output:
        result = subprocess.run(
            [str(ROOT / "scripts" / "build-image.sh"), *options],
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=BUILD_TIMEOUT,
            cwd=ROOT,
        )
    text = log.read_text()
    if result.returncode != 0:
        tail = "\n".join(text.splitlines()[-60:])
        pytest.fail(
            f"scripts/build-image.sh {' '.join(options)} failed; end of {log}:\n{tail}", pytrace=False
        )
    built = [line.split()[2] for line in text.splitlines() if line.startswith("build-image: built ")]
    assert built, f"no 'built' line in {log}"
    return built[-1]


@dataclass(frozen=True)
class Image:
    name: str

    def inspect(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(buildah("inspect", "--type", "image", self.name).stdout)
        return document

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = self.inspect()["OCIv1"]["config"]
        return config

    def environment(self) -> dict[str, str]:
        return dict(item.split("=", 1) for item in self.config().get("Env", []))


@dataclass(frozen=True)
class Container:
    name: str
    image: Image

    def run(
        self, *command: str, volumes: Sequence[str] = (), timeout: float = RUN_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """The command in the container, as the image's user; the result whatever its exit code."""
        return subprocess.run(
            [
                "buildah",
                *STORAGE,
                "run",
                "--network",
                "host",
                *_volume_options(volumes),
                self.name,
                "--",
                *command,
            ],
            capture_output=True,
            text=True,
            env=BUILDAH_ENV,
            timeout=timeout,
        )

    def start(self, log: Path, *command: str, volumes: Sequence[str] = ()) -> Started:
        """The command in the background, its output into the log."""
        return Started.launch(
            log,
            [
                "buildah",
                *STORAGE,
                "run",
                "--network",
                "host",
                *_volume_options(volumes),
                self.name,
                "--",
                *command,
            ],
        )

    def start_read_only(self, log: Path, *command: str) -> Started:
        """The command on the container's root mounted read-only, a tmpfs on /tmp, the image's user."""
        root = buildah("mount", self.name).stdout.strip()
        config = self.image.config()
        environment = [f"{key}={value}" for key, value in self.image.environment().items()]
        script = (
            'set -e; root="$1"; user="$2"; shift 2\n'
            'mount --bind "$root" "$root"\n'
            'mount -o remount,bind,ro "$root"\n'
            'mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"\n'
            'mount -t proc proc "$root/proc"\n'
            'mount --rbind /dev "$root/dev"\n'
            'exec chroot --userspec="$user" "$root" /usr/bin/env -i "$@"\n'
        )
        return Started.launch(
            log,
            [*UNSHARE, "sh", "-c", script, "sh", root, config["User"], *environment, *command],
        )


@dataclass
class Started:
    """A role running in the background; stopped with SIGTERM (then SIGKILL) to its process group."""

    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def launch(cls, log: Path, command: list[str]) -> Started:
        with log.open("wb") as output:
            process = subprocess.Popen(
                command, stdout=output, stderr=subprocess.STDOUT, env=BUILDAH_ENV, start_new_session=True
            )
        return cls(process, log)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode

    def wait_ready(self, port: int) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass  # not listening yet
            if self.process.poll() is not None:
                pytest.fail(f"the server exited {self.process.returncode}:\n{self.output()}", pytrace=False)
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(
                    f"the server was not ready in {READY_TIMEOUT:.0f} s:\n{self.output()}", pytrace=False
                )
            time.sleep(0.5)


def _volume_options(volumes: Sequence[str]) -> list[str]:
    return [option for volume in volumes for option in ("--volume", volume)]


@contextmanager
def container(image: Image) -> Iterator[Container]:
    name = buildah("from", "--pull=never", image.name).stdout.strip()
    try:
        yield Container(name, image)
    finally:
        buildah("umount", name, check=False)
        buildah("rm", name, check=False)
