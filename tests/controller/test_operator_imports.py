"""What the operator loads: libraries only some stores need stay out of its memory until one does."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_an_operator_without_tls_stores_loads_neither_cryptography_nor_another_http_client() -> None:
    script = textwrap.dedent(
        """
        import datetime as dt
        import sys

        # What `memory-operator run` imports before it serves.
        import kopf
        from kubernetes import config
        from memory_operator.controller import client_sync, counting, handlers, kube, main, metrics
        from memory_operator.controller import namespaces, reconcile
        from memory_operator import images, render

        # cryptography is for stores with TLS; httpx would bring its command line's rich and click.
        heavy = ("cryptography", "httpx", "rich", "click", "pygments")
        assert not [m for m in heavy if m in sys.modules], [m for m in heavy if m in sys.modules]

        from memory_operator.controller import certificates
        ca = certificates.FreshMinter().ca("ns/store memory-operator CA", dt.datetime.now(dt.timezone.utc))
        assert "cryptography" in sys.modules and ca.parsed.subject
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
