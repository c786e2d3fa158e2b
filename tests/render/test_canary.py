"""The recall canary's CronJob: rendered for a store with `monitoring.canary`, calling the store's own
server with its read-write key and nothing else."""

from __future__ import annotations

import pytest

from memory_operator import env
from memory_operator.api.store import MemoryStore
from memory_operator.render import canary, names
from render.helpers import CREDENTIALS, SETTINGS, env_of, kinds, make_store, one, render

CANARY = {"monitoring": {"canary": {"schedule": "*/10 * * * *", "topK": 3, "minRecall": 0.9}}}


def test_a_store_without_a_canary_has_no_canary_cronjob() -> None:
    manifests = render({})
    assert not [m for m in manifests if m["metadata"]["name"] == "mem-canary"]
    assert kinds(render({"monitoring": {}})) == kinds(manifests)


def test_the_canary_cronjob() -> None:
    store = make_store(CANARY)
    cronjob = one(render(CANARY), "CronJob", names.canary_cronjob_name(store))
    spec = cronjob["spec"]
    job = spec["jobTemplate"]["spec"]
    pod = job["template"]["spec"]
    (container,) = pod["containers"]
    variables = env_of(container)
    assert spec["schedule"] == "*/10 * * * *" and spec["suspend"] is False
    assert spec["concurrencyPolicy"] == "Forbid"
    assert container["args"] == ["canary", "--top-k", "3", "--min-recall", "0.9", "--max-p95-ms", "2000"]
    assert container["image"] == SETTINGS.job_image
    # The store's own server, with the read-write key, as an agent calls it.
    assert variables[env.SERVER_URL] == names.server_url(store)
    assert variables[env.API_KEY]["secretKeyRef"]["name"] == names.credentials_secret_name(store)
    assert variables[env.STORE_NAME] == "mem" and variables[env.STORE_NAMESPACE] == "agents"
    # Nothing else: no Qdrant, no Kubernetes API, no retry that would hide a flaky store.
    assert env.QDRANT_URL not in variables and env.QDRANT_API_KEY not in variables
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == names.jobs_service_account_name(store)
    assert job["backoffLimit"] == 0 and job["activeDeadlineSeconds"] > 0
    assert container["terminationMessagePolicy"] == "File"
    for labels in (cronjob["metadata"]["labels"], job["template"]["metadata"]["labels"]):
        assert labels["app.kubernetes.io/component"] == "canary"
        assert labels["app.kubernetes.io/name"] == "memory-operator"
        assert labels["memory-operator.io/store"] == "mem"


def test_a_users_secret_provides_the_key() -> None:
    spec = {**CANARY, "auth": {"existingSecret": "my-keys", "apiKeyKey": "rw"}}
    cronjob = one(render(spec), "CronJob", "mem-canary")
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert env_of(container)[env.API_KEY]["secretKeyRef"] == {"name": "my-keys", "key": "rw"}


def test_a_suspended_canary_keeps_its_cronjob() -> None:
    spec = {"monitoring": {"canary": {"suspend": True}}}
    assert one(render(spec), "CronJob", "mem-canary")["spec"]["suspend"] is True


def test_the_canary_needs_the_builtin_server() -> None:
    with pytest.raises(ValueError, match="builtin server flavor"):
        make_store({**CANARY, "server": {"flavor": "openmemory"}})
    # Rendering never makes one for another flavor, whatever a caller builds by hand.
    store = MemoryStore.model_construct(**make_store(CANARY).__dict__)
    store.spec.server.flavor = store.spec.server.flavor.__class__("openmemory")
    assert canary.render(store, SETTINGS.jobs_image, "mem-jobs") == []


def test_a_long_store_name_fits_the_cronjob_name() -> None:
    store = make_store(CANARY, name="a" * 45)
    name = names.canary_cronjob_name(store)
    assert len(name) <= names.MAX_CRONJOB_NAME
    assert one(render_store_named(store), "CronJob", name)


def render_store_named(store: MemoryStore) -> list[dict[str, object]]:
    from memory_operator.render import render_store

    return render_store(store, [], SETTINGS, CREDENTIALS)
