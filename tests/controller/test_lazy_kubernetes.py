"""The Kubernetes client's re-exporting packages load their submodules only when a name is used."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from memory_operator.lazy_kubernetes import exports


def test_a_package_of_reexports_is_read_as_names_and_constants() -> None:
    source = textwrap.dedent(
        '''
        """Generated."""
        from __future__ import absolute_import
        __version__ = "36.0.3"
        from kubernetes.client.api_client import ApiClient
        from kubernetes.client.models.v1_pod import V1Pod as Pod
        from . import config
        from .quantity import parse_quantity
        '''
    )
    found = exports("kubernetes.client", source)
    assert found is not None
    names, constants = found
    assert constants == {"__version__": "36.0.3"}
    assert names == {
        "ApiClient": ("kubernetes.client.api_client", "ApiClient"),
        "Pod": ("kubernetes.client.models.v1_pod", "V1Pod"),
        "config": ("kubernetes.client.config", None),
        "parse_quantity": ("kubernetes.client.quantity", "parse_quantity"),
    }


def test_a_package_that_does_work_on_import_is_left_alone() -> None:
    assert exports("kubernetes", "from . import client\ndef load():\n    pass\n") is None
    assert exports("kubernetes", "import os\n") is None
    assert exports("kubernetes", "from os import path\n") is None  # not one of its own modules
    assert exports("kubernetes", "VERSION = compute()\n") is None


def test_the_operator_loads_only_the_client_classes_it_uses() -> None:
    script = textwrap.dedent(
        """
        import sys
        import memory_operator.controller.main
        from kubernetes import config, utils
        from kubernetes.client import ApiClient, Configuration, V1ObjectMeta

        models = [m for m in sys.modules if m.startswith("kubernetes.client.models.")]
        apis = [m for m in sys.modules if m.startswith("kubernetes.client.api.")]
        assert len(models) < 20 and not apis, (len(models), apis)

        import kubernetes.client
        # Every name the package exports is still there, loaded when read.
        assert kubernetes.client.CoreV1Api.__module__ == "kubernetes.client.api.core_v1_api"
        assert "V1Pod" in dir(kubernetes.client.models)
        assert kubernetes.client.__version__
        class Response:
            data = '{"metadata": {"name": "a", "labels": {"k": "v"}}, "spec": {"containers": []}}'
        pod = ApiClient(Configuration()).deserialize(Response(), "V1Pod")
        assert pod.metadata.labels == {"k": "v"}, pod
        assert utils.parse_quantity("1Gi") == 2**30
        namespace = {}
        exec("from kubernetes.client import *", namespace)
        assert {"V1Pod", "CoreV1Api", "ApiClient"} <= set(namespace)
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
