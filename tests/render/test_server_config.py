"""`spec.server.config`: the builtin server's config file as a ConfigMap, mounted, checksummed."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from memory_operator import env, labels
from memory_operator.api.store import ServerConfigSpec
from memory_operator.render import names
from memory_operator.render.server import CONFIG_KEY
from memory_operator.server.config import load_config
from render.helpers import SERVER_CONFIG, kinds, make_store, one, render


def with_config(config: dict[str, Any] | None, **server: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"server": dict(server)}
    if config is not None:
        spec["server"]["config"] = config
    return spec


def server_pod(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    return dict(one(manifests, "Deployment")["spec"]["template"])


def checksum_of(manifests: list[dict[str, Any]]) -> str | None:
    annotations = server_pod(manifests)["metadata"].get("annotations") or {}
    return annotations.get(labels.CONFIG_CHECKSUM)


def test_without_config_no_configmap_mount_env_or_checksum() -> None:
    manifests = render(with_config(None))
    assert "ConfigMap" not in kinds(manifests)
    pod = server_pod(manifests)
    container = pod["spec"]["containers"][0]
    assert env.SERVER_CONFIG_FILE not in {v["name"] for v in container["env"]}
    assert all(m["mountPath"] != env.CONFIG_DIR for m in container["volumeMounts"])
    assert checksum_of(manifests) is None


def test_config_is_a_configmap_mounted_at_the_config_path() -> None:
    manifests = render(with_config(SERVER_CONFIG))
    store = make_store(with_config(SERVER_CONFIG))
    config_map = one(manifests, "ConfigMap", names.server_config_name(store))
    assert config_map["metadata"]["name"] == "mem-server-config"
    assert config_map["metadata"]["labels"]["app.kubernetes.io/component"] == "server"
    assert yaml.safe_load(config_map["data"][CONFIG_KEY]) == SERVER_CONFIG

    pod = server_pod(manifests)
    container = pod["spec"]["containers"][0]
    assert {"name": env.SERVER_CONFIG_FILE, "value": env.SERVER_CONFIG_PATH} in container["env"]
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == env.CONFIG_DIR)
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == "mem-server-config"
    assert f"{mount['mountPath']}/{CONFIG_KEY}" == env.SERVER_CONFIG_PATH
    # Applied before the Deployment that mounts it.
    assert kinds(manifests).index("ConfigMap") < kinds(manifests).index("Deployment")


def test_checksum_follows_the_content_only() -> None:
    first = checksum_of(render(with_config(SERVER_CONFIG)))
    assert first is not None
    assert checksum_of(render(with_config(SERVER_CONFIG))) == first
    # Other server fields do not change it.
    assert checksum_of(render(with_config(SERVER_CONFIG, replicas=3))) == first
    changed = copy.deepcopy(SERVER_CONFIG)
    changed["categories"][1]["expiration"] = "14d"
    assert checksum_of(render(with_config(changed))) != first
    instructions = {**SERVER_CONFIG, "customInstructions": "Keep everything."}
    assert checksum_of(render(with_config(instructions))) != first


def test_openmemory_flavor_ignores_the_config() -> None:
    manifests = render(with_config(SERVER_CONFIG, flavor="openmemory"))
    assert not [m for m in manifests if m["metadata"]["name"].endswith("server-config")]
    assert checksum_of(manifests) is None


def test_removing_the_config_stops_rendering_it() -> None:
    on = {m["metadata"]["name"] for m in render(with_config(SERVER_CONFIG))}
    off = {m["metadata"]["name"] for m in render(with_config(None))}
    assert on - off == {"mem-server-config"}


def test_rendered_config_is_what_the_server_loads(tmp_path: Path) -> None:
    config_map = one(render(with_config(SERVER_CONFIG)), "ConfigMap")
    path = tmp_path / CONFIG_KEY
    path.write_text(config_map["data"][CONFIG_KEY])
    loaded = load_config(path)
    assert [c.name for c in loaded.categories] == ["incident", "temporary", "service-dependency"]
    assert loaded.categories[0].description == "Outages and their causes"
    assert loaded.custom_instructions == "Only keep facts about services and incidents."
    assert loaded.expirations() == {
        "incident": "90d",
        "temporary": "7d",
        "permanent": "never",
        "session": "2w",
        "service-dependency": "never",
    }


def test_minimal_config_is_loadable(tmp_path: Path) -> None:
    config_map = one(render(with_config({})), "ConfigMap")
    path = tmp_path / CONFIG_KEY
    path.write_text(config_map["data"][CONFIG_KEY])
    assert load_config(path).category_names() == ["incident", "temporary", "permanent"]


@pytest.mark.parametrize(
    "config",
    [
        {"categories": [{"name": "x", "expiration": "12h"}]},
        {"categories": [{"name": "-bad"}]},
        {"categories": [{"name": "a"}, {"name": "a"}]},
        {"defaultExpiration": {"incident": "forever"}},
        {"customInstruction": "typo"},
    ],
)
def test_invalid_config_is_refused(config: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ServerConfigSpec.model_validate(config)
