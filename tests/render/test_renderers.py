"""The renderers: what each component looks like, with each optional feature on and off."""

from __future__ import annotations

import base64
import json
from typing import Any

import yaml

import memory_operator
from memory_operator import env, images, labels
from memory_operator.controller import cache
from memory_operator.labels import CONFIG_CHECKSUM as CONFIG_CHECKSUM_ANNOTATION
from memory_operator.render import Directives, RenderSettings, erasure, names, upgrade
from memory_operator.render.backup import BackupSource
from render.helpers import (
    BACKUP_NAME,
    CREDENTIALS,
    POLICIES,
    REPRESENTATIVE_SPECS,
    SETTINGS,
    env_of,
    kinds,
    make_policy,
    make_store,
    one,
    pod_specs,
    pod_templates,
    render,
)

STORE = make_store()

# --- invariants of every rendering ---------------------------------------------------------------


def test_every_pod_is_locked_down(representative: list[dict[str, Any]]) -> None:
    specs = [spec for m in representative for spec in pod_specs(m)]
    assert specs, "every store has pods"
    for spec in specs:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True
        assert isinstance(pod["runAsUser"], int) and pod["runAsUser"] > 0
        assert isinstance(pod["runAsGroup"], int) and isinstance(pod["fsGroup"], int)
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in spec["containers"] + spec.get("initContainers", []):
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, container["name"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert container["resources"]["requests"], f"{container['name']} has no requests"
            assert ":" in container["image"] and not container["image"].endswith(":latest")


def job_specs(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    if manifest["kind"] == "Job":
        return [manifest["spec"]]
    if manifest["kind"] == "CronJob":
        return [manifest["spec"]["jobTemplate"]["spec"]]
    return []


def test_a_reported_failure_fails_the_job_at_once(representative: list[dict[str, Any]]) -> None:
    """Exit code 1 is a run that failed and wrote why: the Job fails without retrying the same answer;
    evictions are not counted against the back-off limit."""
    specs = [spec for m in representative for spec in job_specs(m)]
    assert specs
    for spec in specs:
        container = spec["template"]["spec"]["containers"][0]["name"]
        fail, ignore = spec["podFailurePolicy"]["rules"]
        assert fail == {
            "action": "FailJob",
            "onExitCodes": {"containerName": container, "operator": "In", "values": [1]},
        }
        assert ignore == {
            "action": "Ignore",
            "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
        }
        assert spec["template"]["spec"]["restartPolicy"] == "Never"


def test_a_job_pod_has_finished_exactly_when_its_one_container_has(
    representative: list[dict[str, Any]],
) -> None:
    """The operator watches job pods only once they left Pending and Running (cache.JOB_PODS): sound
    while every job pod runs one container, never restarted."""
    store = make_store()
    others = [
        erasure.erasure_job(store, "forget-ada", 1, "jobs:1", "mem-jobs"),
        upgrade.check_job(store, "qdrant:2", 0, "jobs:1", "mem-jobs"),
    ]
    specs = [spec for m in [*representative, *others] for spec in job_specs(m)]
    assert {m["kind"] for m in representative if job_specs(m)} == {"Job", "CronJob"}
    for spec in specs:
        pod = spec["template"]["spec"]
        assert pod["restartPolicy"] == "Never"
        assert len(pod["containers"]) == 1 and not pod.get("initContainers")
    assert cache.JOB_PODS.fields == "status.phase!=Pending,status.phase!=Running"


def test_no_pod_talks_to_the_kubernetes_api(representative: list[dict[str, Any]]) -> None:
    """The server, Qdrant and every job work without a ServiceAccount token: none is mounted."""
    for manifest in representative:
        for spec in pod_specs(manifest):
            assert spec["automountServiceAccountToken"] is False, manifest["metadata"]["name"]


def test_every_child_carries_the_contract_labels(representative: list[dict[str, Any]]) -> None:
    for manifest in representative:
        meta = manifest["metadata"]
        labels = meta["labels"]
        assert meta["namespace"] == "agents"
        assert len(meta["name"]) <= (52 if manifest["kind"] == "CronJob" else 63)
        assert labels["app.kubernetes.io/instance"] == "mem"
        assert labels["memory-operator.io/store"] == "mem"
        assert labels["app.kubernetes.io/managed-by"] == "memory-operator"
        assert labels["app.kubernetes.io/part-of"] == "memory-operator"
        assert labels["app.kubernetes.io/name"] in {"qdrant", "memory-server", "memory-operator"}
        assert labels["app.kubernetes.io/component"] in {
            "vector-store",
            "server",
            "expiration",
            "canary",
            "backup",
            "collection",
            "credentials",
            "network",
            "jobs",
            "erasure",
        }
        assert "ownerReferences" not in meta, "the controller adds owners"
        for template in pod_templates(manifest):
            assert template["metadata"]["labels"]["memory-operator.io/store"] == "mem"


def test_pod_selectors_match_their_templates(representative: list[dict[str, Any]]) -> None:
    for manifest in representative:
        if manifest["kind"] in ("StatefulSet", "Deployment"):
            selector = manifest["spec"]["selector"]["matchLabels"]
            template_labels = manifest["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= template_labels.items()


def test_services_select_pods_that_exist(representative: list[dict[str, Any]]) -> None:
    pod_labels = [t["metadata"]["labels"] for m in representative for t in pod_templates(m)]
    for service in (m for m in representative if m["kind"] == "Service"):
        selector = service["spec"]["selector"]
        assert any(selector.items() <= labels.items() for labels in pod_labels), service["metadata"]["name"]


def test_no_operator_version_in_pod_templates(representative: list[dict[str, Any]]) -> None:
    version = memory_operator.__version__
    for manifest in representative:
        for template in pod_templates(manifest):
            assert version not in json.dumps(template), manifest["metadata"]["name"]


def test_rendering_is_deterministic() -> None:
    for spec in REPRESENTATIVE_SPECS.values():
        first = yaml.safe_dump_all(render(spec, POLICIES))
        second = yaml.safe_dump_all(render(spec, list(reversed(POLICIES))))
        assert first == second


def test_children_come_in_apply_order() -> None:
    order = kinds(render(REPRESENTATIVE_SPECS["everything"], POLICIES))
    assert order.index("Secret") < order.index("StatefulSet") < order.index("Deployment")
    assert order.index("Service") < order.index("StatefulSet")
    assert order.index("Job") < order.index("Deployment"), "the restore runs before the server"
    assert order[-1] == "CronJob"


def test_names_are_unique_per_kind(representative: list[dict[str, Any]]) -> None:
    refs = [(m["kind"], m["metadata"]["name"]) for m in representative]
    assert len(refs) == len(set(refs))


# --- names ---------------------------------------------------------------------------------------


def test_names_of_the_longest_stores_fit_and_stay_distinct() -> None:
    long_a = make_store(name="a" * 41 + "-one")
    long_b = make_store(name="a" * 41 + "-two")
    for fn, limit in [
        (names.qdrant_statefulset_name, 52),
        (names.server_deployment_name, 63),
        (names.restore_job_name, 63),
        (names.credentials_secret_name, 63),
    ]:
        assert len(fn(long_a)) <= limit
        assert fn(long_a) != fn(long_b)
        assert fn(long_a) == fn(make_store(name="a" * 41 + "-one"))
    assert len(names.expiration_cronjob_name(long_a, "p" * 63)) <= 52
    assert len(names.backup_job_name("b" * 63)) <= 63
    assert names.backup_job_name("b" * 63) != names.backup_job_name("b" * 62 + "c")
    assert names.qdrant_statefulset_name(make_store(name="short")) == "short-qdrant"


def test_urls_are_in_cluster_service_addresses() -> None:
    assert names.qdrant_url(STORE) == "http://mem-qdrant.agents.svc:6333"
    assert names.server_url(STORE) == "http://mem-server.agents.svc:8765"


# --- Qdrant --------------------------------------------------------------------------------------


def test_single_node_qdrant() -> None:
    manifests = render({})
    sts = one(manifests, "StatefulSet")
    container = sts["spec"]["template"]["spec"]["containers"][0]
    variables = env_of(container)
    assert sts["spec"]["replicas"] == 1
    # The image's own entrypoint, after raising the open-files limit as Qdrant's chart does.
    assert container["command"][:2] == ["/bin/sh", "-c"]
    assert container["command"][2].startswith('ulimit -n "$(ulimit -Hn)"')
    assert container["command"][2].rstrip().endswith("exec /qdrant/entrypoint.sh")
    assert "QDRANT__CLUSTER__ENABLED" not in variables
    assert variables["QDRANT__SERVICE__API_KEY"] == {
        "secretKeyRef": {"name": names.qdrant_secret_name(STORE), "key": "api-key"}
    }
    assert container["image"] == images.DEFAULT_QDRANT_IMAGE
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["startupProbe"]["httpGet"]["path"] == "/livez"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/qdrant/storage"] == "storage"
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes[mounts["/qdrant/snapshots"]]
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Retain",
    }
    (template,) = sts["spec"]["volumeClaimTemplates"]
    assert template["metadata"]["name"] == "storage"
    assert template["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert "storageClassName" not in template["spec"]
    assert "affinity" not in sts["spec"]["template"]["spec"]
    assert not [m for m in manifests if m["kind"] == "PodDisruptionBudget"]


def test_qdrant_services() -> None:
    manifests = render({})
    client = one(manifests, "Service", names.qdrant_service_name(STORE))
    assert {p["name"]: p["port"] for p in client["spec"]["ports"]} == {"http": 6333, "grpc": 6334}
    assert "clusterIP" not in client["spec"]
    headless = one(manifests, "Service", names.qdrant_headless_service_name(STORE))
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert one(manifests, "StatefulSet")["spec"]["serviceName"] == headless["metadata"]["name"]


def test_distributed_qdrant() -> None:
    manifests = render(REPRESENTATIVE_SPECS["distributed"])
    sts = one(manifests, "StatefulSet")
    spec = sts["spec"]
    container = spec["template"]["spec"]["containers"][0]
    variables = env_of(container)
    assert spec["replicas"] == 3
    assert spec["podManagementPolicy"] == "Parallel"
    assert variables["QDRANT__CLUSTER__ENABLED"] == "true"
    assert {p["name"]: p["containerPort"] for p in container["ports"]}["p2p"] == 6335
    assert spec["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "fast-ssd"
    assert spec["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "50Gi"
    headless = one(manifests, "Service", names.qdrant_headless_service_name(STORE))
    assert 6335 in [p["port"] for p in headless["spec"]["ports"]]
    assert spec["template"]["spec"]["affinity"]["podAntiAffinity"]
    budget = one(manifests, "PodDisruptionBudget", names.qdrant_disruption_budget_name(STORE))
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()


def _peer_command(container: dict[str, Any], hostname: str) -> str:
    """The command line the wrapper execs on the pod with this hostname, expanded like sh would."""
    import subprocess

    script = container["command"][2].replace("exec /qdrant/entrypoint.sh", "exec echo /qdrant/entrypoint.sh")
    variables = {k: v for k, v in env_of(container).items() if isinstance(v, str)}
    result = subprocess.run(
        [container["command"][0], "-c", script],
        env={**variables, "HOSTNAME": hostname},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def test_distributed_peers_found_and_join_the_cluster() -> None:
    container = one(render(REPRESENTATIVE_SPECS["distributed"]), "StatefulSet")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["command"][:2] == ["/bin/sh", "-c"]
    peer = "mem-qdrant-{}.mem-qdrant-headless.agents.svc:6335"
    assert _peer_command(container, "mem-qdrant-0") == f"/qdrant/entrypoint.sh --uri http://{peer.format(0)}"
    assert _peer_command(container, "mem-qdrant-2") == (
        f"/qdrant/entrypoint.sh --bootstrap http://{peer.format(0)} --uri http://{peer.format(2)}"
    )


# --- credentials ---------------------------------------------------------------------------------


def _decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def test_generated_credentials() -> None:
    manifests = render({})
    client = one(manifests, "Secret", names.credentials_secret_name(STORE))
    assert _decoded(client) == {"api-key": "rw-5ecret", "read-only-api-key": "ro-5ecret"}
    assert _decoded(one(manifests, "Secret", names.qdrant_secret_name(STORE))) == {"api-key": "qd-5ecret"}
    server = env_of(one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0])
    assert server[env.API_KEY] == {"secretKeyRef": {"name": client["metadata"]["name"], "key": "api-key"}}
    assert server[env.READ_ONLY_API_KEY]["secretKeyRef"]["key"] == "read-only-api-key"
    assert "optional" not in server[env.READ_ONLY_API_KEY]["secretKeyRef"]


def test_existing_secret_is_read_not_rendered() -> None:
    manifests = render(REPRESENTATIVE_SPECS["existing-secret"])
    secrets = [m["metadata"]["name"] for m in manifests if m["kind"] == "Secret"]
    assert secrets == [names.qdrant_secret_name(STORE)]
    server = env_of(one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0])
    assert server[env.API_KEY] == {"secretKeyRef": {"name": "my-keys", "key": "rw"}}
    assert server[env.READ_ONLY_API_KEY] == {
        "secretKeyRef": {"name": "my-keys", "key": "ro", "optional": True}
    }


def test_no_secrets_without_credentials() -> None:
    assert "Secret" not in kinds(render({}, credentials=None))


def test_credentials_generate_distinct_keys_and_hide_them() -> None:
    from memory_operator.render import Credentials

    a, b = Credentials.generate(), Credentials.generate()
    assert len({a.api_key, a.read_only_api_key, a.qdrant_api_key, b.api_key}) == 4
    assert len(a.api_key) >= 40
    assert a.api_key not in repr(a)


# --- builtin server ------------------------------------------------------------------------------


def test_builtin_server() -> None:
    manifests = render({})
    deployment = one(manifests, "Deployment", names.server_deployment_name(STORE))
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    variables = env_of(container)
    assert container["image"] == images.DEFAULT_BUILTIN_SERVER_IMAGE
    assert container["args"] == ["server", "--port", "8765"]
    assert container["ports"] == [{"name": "http", "containerPort": 8765, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert variables[env.QDRANT_URL] == names.qdrant_url(STORE)
    assert variables[env.QDRANT_API_KEY]["secretKeyRef"]["name"] == names.qdrant_secret_name(STORE)
    assert variables[env.COLLECTION] == "memories"
    assert variables["MEM0_TELEMETRY"] == "false"
    assert variables["HF_HUB_OFFLINE"] == "1", "the local embedder never reaches the Hub"
    for name in ("HOME", "MEM0_DIR", "HF_HOME"):
        assert variables[name].startswith(env.SCRATCH_DIR)
    scratch = next(m for m in container["volumeMounts"] if m["mountPath"] == env.SCRATCH_DIR)
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == scratch["name"])
    assert not any(k.startswith(("MEMORY_EMBEDDER", "MEMORY_LLM")) for k in variables)
    service = one(manifests, "Service", names.server_service_name(STORE))
    assert service["spec"]["ports"][0]["port"] == 8765


def test_builtin_server_models_and_replicas() -> None:
    manifests = render(
        {
            **REPRESENTATIVE_SPECS["models"],
            "server": {**REPRESENTATIVE_SPECS["models"]["server"], "replicas": 2},
        }
    )
    variables = env_of(one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0])
    assert variables[env.LLM_PROVIDER] == "openai"
    assert variables[env.LLM_MODEL] == "gpt-4.1-mini"
    assert variables[env.LLM_API_KEY] == {"secretKeyRef": {"name": "openai", "key": "api-key"}}
    assert variables[env.EMBEDDER_PROVIDER] == "ollama"
    assert variables[env.EMBEDDER_DIMS] == "768"
    assert variables[env.EMBEDDER_BASE_URL] == "http://ollama:11434"
    assert env.EMBEDDER_API_KEY not in variables
    assert "HF_HUB_OFFLINE" not in variables
    budget = one(manifests, "PodDisruptionBudget", names.server_disruption_budget_name(STORE))
    assert budget["spec"]["maxUnavailable"] == 1


def test_server_image_override() -> None:
    deployment = one(render({"server": {"image": "registry.example/memory:2"}}), "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/memory:2"


def test_builtin_server_needs_no_network_policy() -> None:
    policies = [m for m in render({}) if m["kind"] == "NetworkPolicy"]
    assert [p["metadata"]["name"] for p in policies] == [names.qdrant_network_policy_name(STORE)]


# --- openmemory ----------------------------------------------------------------------------------


def test_openmemory_wires_the_upstream_contract() -> None:
    manifests = render(REPRESENTATIVE_SPECS["openmemory"])
    deployment = one(manifests, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    variables = env_of(container)
    assert container["image"] == images.DEFAULT_OPENMEMORY_IMAGE
    assert container["ports"][0]["containerPort"] == 8765
    assert variables["QDRANT_HOST"] == "mem-qdrant.agents.svc"
    assert variables["QDRANT_PORT"] == "6333"
    assert variables["USER"] == "agents"
    assert variables["DATABASE_URL"] == "sqlite:////data/openmemory.db"
    assert variables["MEM0_DIR"].startswith("/data/")
    assert variables["LLM_PROVIDER"] == "openai" and variables["EMBEDDER_MODEL"] == "text-embedding-3-small"
    assert variables["EMBEDDER_PROVIDER"] == "openai" and variables["LLM_MODEL"] == "gpt-4.1-mini"
    for key in ("OPENAI_API_KEY", "LLM_API_KEY", "EMBEDDER_API_KEY"):
        assert variables[key] == {"secretKeyRef": {"name": "openai", "key": "api-key"}}
    assert not any(k.startswith("MEMORY_") for k in variables), "upstream reads none of our variables"
    # SQLite: one pod, the old one gone before the new one opens the file.
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    claim = one(manifests, "PersistentVolumeClaim", names.openmemory_data_claim_name(STORE))
    assert claim["metadata"]["name"] == "mem-openmemory-data"
    data = next(m for m in container["volumeMounts"] if m["mountPath"] == "/data")
    volume = next(v for v in pod["volumes"] if v["name"] == data["name"])
    assert volume["persistentVolumeClaim"]["claimName"] == "mem-openmemory-data"


def test_openmemory_probes_never_write_state() -> None:
    container = one(render(REPRESENTATIVE_SPECS["openmemory"]), "Deployment")["spec"]["template"]["spec"][
        "containers"
    ][0]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        spec = container[probe]
        assert "tcpSocket" in spec or spec["httpGet"]["path"] == "/docs", probe
        assert "/api/v1/config" not in json.dumps(spec)


def test_openmemory_qdrant_runs_without_a_key_behind_network_policies() -> None:
    manifests = render(REPRESENTATIVE_SPECS["openmemory"])
    qdrant_env = env_of(one(manifests, "StatefulSet")["spec"]["template"]["spec"]["containers"][0])
    assert "QDRANT__SERVICE__API_KEY" not in qdrant_env, "upstream OpenMemory cannot send one"
    server_policy = one(manifests, "NetworkPolicy", names.server_network_policy_name(STORE))
    (rule,) = server_policy["spec"]["ingress"]
    assert {"podSelector": {}} in rule["from"], "agents of the namespace"
    assert all("namespaceSelector" not in peer or peer["podSelector"] for peer in rule["from"])
    assert rule["ports"] == [{"protocol": "TCP", "port": 8765}]
    assert "PodDisruptionBudget" not in kinds(manifests)


def test_openmemory_never_scales_past_one() -> None:
    manifests = render({"server": {"flavor": "openmemory", "replicas": 0}})
    assert one(manifests, "Deployment")["spec"]["replicas"] == 0


# --- NetworkPolicy -------------------------------------------------------------------------------


def test_qdrant_network_policy() -> None:
    manifests = render({})
    policy = one(manifests, "NetworkPolicy", names.qdrant_network_policy_name(STORE))
    sts_labels = one(manifests, "StatefulSet")["spec"]["template"]["metadata"]["labels"]
    server_labels = one(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    assert spec["podSelector"]["matchLabels"].items() <= sts_labels.items()
    api_rule, p2p_rule = spec["ingress"]
    assert [p["port"] for p in api_rule["ports"]] == [6333, 6334]
    # Peers also reach each other's REST port: the `snapshot` shard transfer method downloads over it.
    assert [p["port"] for p in p2p_rule["ports"]] == [6333, 6335]
    server_peer, job_peer, operator_peer = api_rule["from"]
    assert server_peer["podSelector"]["matchLabels"].items() <= server_labels.items()
    assert job_peer["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "memory-operator",
        "memory-operator.io/store": "mem",
    }
    assert job_peer["podSelector"]["matchExpressions"][0]["values"] == [
        "backup",
        "expiration",
        "collection",
        "upgrade",
        "erasure",
    ]
    assert operator_peer == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "memory-operator"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "memory-operator"}},
    }
    (p2p_peer,) = p2p_rule["from"]
    assert p2p_peer["podSelector"]["matchLabels"].items() <= sts_labels.items()


def test_job_pods_pass_the_qdrant_network_policy() -> None:
    manifests = render(REPRESENTATIVE_SPECS["everything"], POLICIES)
    policy = one(manifests, "NetworkPolicy", names.qdrant_network_policy_name(STORE))
    job_peer = policy["spec"]["ingress"][0]["from"][1]["podSelector"]
    for manifest in manifests:
        if manifest["kind"] in ("CronJob", "Job"):
            (template,) = pod_templates(manifest)
            labels = template["metadata"]["labels"]
            assert job_peer["matchLabels"].items() <= labels.items()
            assert labels["app.kubernetes.io/component"] in job_peer["matchExpressions"][0]["values"]


def test_operator_anywhere_when_its_namespace_is_unknown() -> None:
    settings = RenderSettings(operator_pod_labels={"app": "op"})
    policy = one(render({}, settings=settings), "NetworkPolicy")
    assert policy["spec"]["ingress"][0]["from"][2] == {
        "namespaceSelector": {},
        "podSelector": {"matchLabels": {"app": "op"}},
    }


# --- expiration ----------------------------------------------------------------------------------


def test_expiration_cronjob_per_policy() -> None:
    manifests = render({}, POLICIES)
    cronjob = one(manifests, "CronJob", names.expiration_cronjob_name(STORE, "ttl"))
    configmap = one(manifests, "ConfigMap", names.expiration_configmap_name(STORE, "ttl"))
    spec = cronjob["spec"]
    job = spec["jobTemplate"]["spec"]
    pod = job["template"]["spec"]
    container = pod["containers"][0]
    variables = env_of(container)
    assert spec["schedule"] == "0 3 * * *"
    assert spec["timeZone"] == "Etc/UTC"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] > 0
    assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1
    assert (
        job["backoffLimit"] >= 0 and job["activeDeadlineSeconds"] > 0 and job["ttlSecondsAfterFinished"] > 0
    )
    assert container["args"] == ["expire", "--policy-file", env.POLICY_PATH]
    assert container["terminationMessagePolicy"] == "File"
    assert container["image"] == SETTINGS.job_image
    assert pod["serviceAccountName"] == "mem-jobs"
    assert pod["restartPolicy"] == "Never"
    assert cronjob["metadata"]["labels"]["memory-operator.io/policy"] == "ttl"
    assert job["template"]["metadata"]["labels"]["memory-operator.io/policy"] == "ttl"
    assert configmap["metadata"]["labels"]["memory-operator.io/policy"] == "ttl"
    assert variables[env.QDRANT_URL] == names.qdrant_url(STORE)
    assert variables[env.QDRANT_API_KEY]["secretKeyRef"]["name"] == names.qdrant_secret_name(STORE)
    assert variables[env.COLLECTION] == "memories"
    assert variables[env.SERVER_URL] == names.server_url(STORE)
    assert variables[env.SERVER_FLAVOR] == "builtin"
    assert variables[env.STORE_NAME] == "mem" and variables[env.STORE_NAMESPACE] == "agents"
    assert variables[env.API_KEY]["secretKeyRef"]["name"] == names.credentials_secret_name(STORE)
    # The policy file is the ConfigMap's, mounted where the args say.
    mount = next(m for m in container["volumeMounts"] if env.POLICY_PATH.startswith(m["mountPath"]))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    assert json.loads(configmap["data"][env.POLICY_PATH.rsplit("/", 1)[1]]) == POLICIES[0].spec.wire()


def test_dry_run_policy_passes_the_flag() -> None:
    manifests = render({}, POLICIES)
    sessions = one(manifests, "CronJob", names.expiration_cronjob_name(STORE, "sessions"))
    container = sessions["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][-1] == "--dry-run"
    assert sessions["spec"]["schedule"] == "@hourly"


def test_policy_change_rolls_the_job_template() -> None:
    def checksum(policy_spec: dict[str, Any]) -> str:
        cronjob = one(render({}, [make_policy("ttl", **policy_spec)]), "CronJob")
        return str(
            cronjob["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["annotations"][
                CONFIG_CHECKSUM_ANNOTATION
            ]
        )

    assert checksum({}) == checksum({})
    assert checksum({}) != checksum({"honorExpirationDate": False})


def test_no_policies_no_expiration() -> None:
    manifests = render({})
    assert "CronJob" not in kinds(manifests) and "ConfigMap" not in kinds(manifests)


def test_suspended_policy_renders_nothing() -> None:
    manifests = render({}, [make_policy("ttl", suspend=True), make_policy("kept")])
    cronjobs = [m["metadata"]["name"] for m in manifests if m["kind"] == "CronJob"]
    assert cronjobs == [names.expiration_cronjob_name(STORE, "kept")]
    assert names.expiration_configmap_name(STORE, "ttl") not in [m["metadata"]["name"] for m in manifests]


def test_openmemory_expiration_goes_through_the_server() -> None:
    manifests = render(REPRESENTATIVE_SPECS["openmemory"], POLICIES)
    container = one(manifests, "CronJob", names.expiration_cronjob_name(STORE, "ttl"))["spec"]["jobTemplate"][
        "spec"
    ]["template"]["spec"]["containers"][0]
    assert env_of(container)[env.SERVER_FLAVOR] == "openmemory"
    # OpenMemory keeps its memories in a collection of its own name, whatever the spec says.
    assert env_of(container)[env.COLLECTION] == "openmemory"


# --- backup and restore --------------------------------------------------------------------------


def _backup_container(manifests: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    job = one(manifests, "Job", names.backup_job_name(BACKUP_NAME))
    pod = job["spec"]["template"]["spec"]
    return pod, pod["containers"][0]


def test_no_backup_without_spec() -> None:
    manifests = render({}, directives=Directives(backups=(BACKUP_NAME,)))
    assert "PersistentVolumeClaim" not in kinds(manifests)
    assert "Job" not in kinds(manifests)
    assert "CronJob" not in kinds(manifests)


def test_backups_are_jobs_the_operator_runs_not_a_cronjob() -> None:
    spec = REPRESENTATIVE_SPECS["backup-pvc"]
    assert "CronJob" not in kinds(render(spec))
    assert "Job" not in kinds(render(spec, directives=Directives()))
    job = one(render(spec), "Job", names.backup_job_name(BACKUP_NAME))
    assert job["metadata"]["labels"][labels.BACKUP] == BACKUP_NAME
    assert job["spec"]["template"]["metadata"]["labels"][labels.BACKUP] == BACKUP_NAME
    assert job["spec"]["ttlSecondsAfterFinished"] > 0


def test_backup_to_a_claim_the_operator_creates() -> None:
    manifests = render(REPRESENTATIVE_SPECS["backup-pvc"])
    claim = one(manifests, "PersistentVolumeClaim", "mem-backups")
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert claim["spec"]["storageClassName"] == "standard"
    pod, container = _backup_container(manifests)
    variables = env_of(container)
    assert container["args"] == ["backup", "--store", "mem", "--backup", BACKUP_NAME]
    assert variables[env.BACKUP_DIR] == "/backups"
    assert variables[env.BACKUP_MAX_COUNT] == "7" and variables[env.BACKUP_MAX_AGE] == "30d"
    assert env.BACKUP_S3_BUCKET not in variables
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/backups")
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["persistentVolumeClaim"]["claimName"] == "mem-backups"
    assert pod["serviceAccountName"] == "mem-jobs"


def test_backup_to_an_existing_claim() -> None:
    manifests = render(REPRESENTATIVE_SPECS["backup-existing-claim"])
    assert "PersistentVolumeClaim" not in kinds(manifests)
    pod, _ = _backup_container(manifests)
    assert {"name": "backups", "persistentVolumeClaim": {"claimName": "shared-backups"}} in pod["volumes"]


def test_backup_to_s3() -> None:
    manifests = render(REPRESENTATIVE_SPECS["backup-s3"])
    assert "PersistentVolumeClaim" not in kinds(manifests)
    _, container = _backup_container(manifests)
    variables = env_of(container)
    assert variables[env.BACKUP_S3_BUCKET] == "memories"
    assert variables[env.BACKUP_S3_PREFIX] == "agents/"
    assert variables[env.BACKUP_S3_ENDPOINT] == "http://minio:9000"
    assert variables[env.BACKUP_S3_REGION] == "eu-west-1"
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert variables[key] == {"secretKeyRef": {"name": "s3-keys", "key": key}}
    assert variables[env.BACKUP_MAX_COUNT] == "3" and variables[env.BACKUP_MAX_AGE] == "14d"
    assert env.BACKUP_DIR not in variables
    assert all(m["mountPath"] != "/backups" for m in container["volumeMounts"])


def test_backup_addresses_every_qdrant_node() -> None:
    _, container = _backup_container(render({**REPRESENTATIVE_SPECS["distributed"], "backup": {}}))
    peers = env_of(container)[env.QDRANT_PEERS].split(",")
    assert peers == [f"http://mem-qdrant-{i}.mem-qdrant-headless.agents.svc:6333" for i in range(3)]


def test_restore_job() -> None:
    manifests = render(REPRESENTATIVE_SPECS["restore"])
    job = one(manifests, "Job", names.restore_job_name(STORE))
    assert job["metadata"]["name"] == "mem-restore"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["restore", "--store", "mem", "--backup", "nightly-1"]
    variables = env_of(container)
    assert variables[env.BACKUP_S3_BUCKET] == "memories"
    assert variables[env.QDRANT_URL] == names.qdrant_url(STORE)
    assert "ttlSecondsAfterFinished" not in job["spec"], "a vanished restore Job would run again"
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_restore_without_a_destination() -> None:
    job = one(
        render(REPRESENTATIVE_SPECS["restore-without-destination"]), "Job", names.restore_job_name(STORE)
    )
    variables = env_of(job["spec"]["template"]["spec"]["containers"][0])
    assert not any(k.startswith("MEMORY_BACKUP_") for k in variables)
    # The backup's store and location come from its MemoryBackup, through the operator.
    source = BackupSource(store="agents-prod", location="s3://b/agents-prod/nightly-1/")
    directives = Directives(restore=True, restore_source=source, hold_server=True)
    job = one(render(REPRESENTATIVE_SPECS["restore-without-destination"], directives=directives), "Job")
    variables = env_of(job["spec"]["template"]["spec"]["containers"][0])
    assert variables[env.BACKUP_SOURCE_STORE] == "agents-prod"
    assert variables[env.BACKUP_LOCATION] == "s3://b/agents-prod/nightly-1/"


def test_settings_choose_the_job_image_and_every_job_runs_as_the_stores_account() -> None:
    settings = RenderSettings(job_image="registry.example/op:7")
    jobs = 0
    for manifest in render(REPRESENTATIVE_SPECS["everything"], POLICIES, settings=settings):
        for spec in pod_specs(manifest):
            if manifest["metadata"]["labels"]["app.kubernetes.io/name"] == "memory-operator":
                jobs += 1
                assert spec["containers"][0]["image"] == "registry.example/op:7"
                assert spec["serviceAccountName"] == names.jobs_service_account_name(STORE)
    assert jobs >= 2


def test_credentials_never_in_plain_text() -> None:
    text = yaml.safe_dump_all(render(REPRESENTATIVE_SPECS["everything"], POLICIES))
    for key in (CREDENTIALS.api_key, CREDENTIALS.read_only_api_key, CREDENTIALS.qdrant_api_key):
        assert key not in text
