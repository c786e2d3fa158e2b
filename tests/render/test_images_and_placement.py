"""Images from one's own registry, pull secrets, and where each component's pods run.

A private registry moves every image the operator deploys; pull secrets reach every pod; a store's
placement reaches its Qdrant, server and job pods. A store that sets none of it renders exactly as
before, so upgrading the operator rolls no pod.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from memory_operator import deployment, env, images
from memory_operator.cli import main
from memory_operator.render import RenderSettings, Scraper, collection, jobs, meta, names, render_store
from render.helpers import (
    CREDENTIALS,
    POLICIES,
    REPRESENTATIVE_SPECS,
    SETTINGS,
    env_of,
    every_job,
    make_store,
    one,
    pod_specs,
    pod_templates,
    render,
)

REGISTRY = "registry.corp.example/mirror"
PRIVATE = RenderSettings(
    operator_namespace="memory-operator",
    image_registry=REGISTRY,
    image_pull_secrets=("mirror-pull",),
)
# Everything a store can run at once: a Qdrant cluster, a policy's CronJob, a backup and a restore.
EVERY_POD = {
    "vectorStore": {"replicas": 3},
    "backup": {"destination": {"pvc": {}}},
    "bootstrap": {"fromBackup": {"name": "nightly-1"}},
    "imagePullSecrets": [{"name": "team-pull"}, {"name": "mirror-pull"}],
}
PLACEMENT: dict[str, Any] = {
    "labels": {"team": "search", "app.kubernetes.io/name": "hijacked"},
    "annotations": {"sidecar.istio.io/inject": "false"},
    "nodeSelector": {"pool": "memory"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "memory", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "arch", "operator": "In", "values": ["amd64"]}]}
                ]
            }
        }
    },
    "topologySpreadConstraints": [{"topologyKey": "topology.kubernetes.io/zone", "maxSkew": 1}],
    "priorityClassName": "memory-critical",
}
NEW_POD_FIELDS = {
    "imagePullSecrets",
    "nodeSelector",
    "tolerations",
    "topologySpreadConstraints",
    "priorityClassName",
}
SERVER_IMAGE = "ghcr.io/memory-operator/memory-operator:server-1"


def workloads(manifests: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    return (m for m in manifests if m["kind"] in ("StatefulSet", "Deployment", "Job", "CronJob"))


def containers(manifests: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for manifest in workloads(manifests):
        for spec in pod_specs(manifest):
            for container in spec.get("initContainers", []) + spec["containers"]:
                yield f"{manifest['kind']}/{manifest['metadata']['name']}", container


def with_collection_job(store_spec: dict[str, Any], settings: RenderSettings) -> list[dict[str, Any]]:
    store = make_store(store_spec)
    manifests = render_store(store, POLICIES, settings, CREDENTIALS, every_job(store))
    if any(m["metadata"]["name"].startswith("mem-collection-") for m in manifests):
        return manifests
    job = collection.collection_job(store, settings.jobs_image, settings.job_service_account, settings.images)
    return [*manifests, job]


# --- images -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "moved"),
    [
        ("docker.io/qdrant/qdrant:v1.16.3", f"{REGISTRY}/qdrant/qdrant:v1.16.3"),
        (SERVER_IMAGE, f"{REGISTRY}/memory-operator/memory-operator:server-1"),
        ("qdrant/qdrant:v1", f"{REGISTRY}/qdrant/qdrant:v1"),  # a Docker Hub short name
        ("nginx@sha256:" + "a" * 64, f"{REGISTRY}/nginx@sha256:" + "a" * 64),
        ("localhost:5000/team/app:1", f"{REGISTRY}/team/app:1"),
        ("localhost/app:1", f"{REGISTRY}/app:1"),
    ],
)
def test_relocate_replaces_the_registry_and_keeps_path_tag_and_digest(image: str, moved: str) -> None:
    assert images.relocate(image, REGISTRY) == moved
    assert images.relocate(image, REGISTRY + "/") == moved
    assert images.relocate(image, None) == image


@pytest.mark.parametrize("flavor", ["builtin", "openmemory"])
def test_a_private_registry_moves_every_image_and_every_pod_pulls_with_the_secrets(flavor: str) -> None:
    spec = copy.deepcopy(EVERY_POD)
    spec["server"] = {"flavor": flavor}
    manifests = with_collection_job(spec, PRIVATE)
    found = list(containers(manifests))
    # Qdrant, the server, the two policies' CronJobs, the backup, restore and collection Jobs
    assert len(found) == 7, [label for label, _ in found]
    for label, container in found:
        assert container["image"].startswith(REGISTRY + "/"), (label, container["image"])
    for manifest in workloads(manifests):
        for spec_ in pod_specs(manifest):
            # the operator's secret first, then the store's, each once
            assert spec_["imagePullSecrets"] == [{"name": "mirror-pull"}, {"name": "team-pull"}], manifest[
                "metadata"
            ]["name"]
    server = next(c for label, c in found if label.startswith("Deployment/"))
    openmemory = flavor == "openmemory"
    default = images.DEFAULT_OPENMEMORY_IMAGE if openmemory else images.DEFAULT_BUILTIN_SERVER_IMAGE
    assert server["image"] == images.relocate(default, REGISTRY)


def test_images_a_store_names_are_used_as_given() -> None:
    spec = {
        "vectorStore": {"image": "quay.example/qdrant:v1.16.3"},
        "server": {"image": "quay.example/memory:7"},
    }
    manifests = render_store(make_store(spec), [], PRIVATE, CREDENTIALS)
    by_workload = dict(containers(manifests))
    assert by_workload["StatefulSet/mem-qdrant"]["image"] == "quay.example/qdrant:v1.16.3"
    assert by_workload["Deployment/mem-server"]["image"] == "quay.example/memory:7"


def test_a_job_image_given_in_full_is_used_as_given() -> None:
    settings = RenderSettings(job_image="ops.example/memory-operator:0.2.0", image_registry=REGISTRY)
    manifests = render(EVERY_POD, POLICIES, settings=settings)
    jobs_ = [c["image"] for label, c in containers(manifests) if label.startswith(("Job/", "CronJob/"))]
    assert jobs_ and set(jobs_) == {"ops.example/memory-operator:0.2.0"}


def test_without_a_registry_the_default_images_are_unchanged() -> None:
    manifests = with_collection_job(EVERY_POD, SETTINGS)
    found = {label.split("/")[0]: c["image"] for label, c in containers(manifests)}
    assert found["StatefulSet"] == images.DEFAULT_QDRANT_IMAGE
    assert found["Deployment"] == images.DEFAULT_BUILTIN_SERVER_IMAGE
    assert found["Job"] == found["CronJob"] == images.DEFAULT_JOB_IMAGE


# --- placement ----------------------------------------------------------------------------------


def placed_everywhere() -> list[dict[str, Any]]:
    spec = copy.deepcopy(EVERY_POD)
    spec["vectorStore"]["pod"] = PLACEMENT
    spec["server"] = {"pod": {**PLACEMENT, "priorityClassName": "server-priority"}}
    spec["jobs"] = {"pod": {**PLACEMENT, "priorityClassName": "jobs-priority"}}
    return with_collection_job(spec, SETTINGS)


def test_each_component_s_pods_run_where_its_placement_says() -> None:
    manifests = placed_everywhere()
    priorities = {"StatefulSet": "memory-critical", "Deployment": "server-priority"}
    count = 0
    for manifest in workloads(manifests):
        for template in pod_templates(manifest):
            spec, metadata = template["spec"], template["metadata"]
            assert spec["priorityClassName"] == priorities.get(manifest["kind"], "jobs-priority")
            assert spec["nodeSelector"] == {"pool": "memory"}
            assert spec["tolerations"] == PLACEMENT["tolerations"]
            assert spec["affinity"]["nodeAffinity"] == PLACEMENT["affinity"]["nodeAffinity"]
            assert metadata["labels"]["team"] == "search"
            assert metadata["annotations"]["sidecar.istio.io/inject"] == "false"
            # the operator's labels win: selectors and NetworkPolicies keep finding the pods
            assert metadata["labels"]["app.kubernetes.io/name"] in {meta.QDRANT, meta.SERVER, meta.JOBS}
            (constraint,) = spec["topologySpreadConstraints"]
            # with no selector of its own, a constraint counts the component's pods of this store
            counted = constraint["labelSelector"]["matchLabels"]
            assert counted.items() <= metadata["labels"].items()
            assert counted["app.kubernetes.io/instance"] == "mem"
            assert constraint["whenUnsatisfiable"] == "DoNotSchedule"
            count += 1
    assert count == 7


def test_placed_pods_match_the_kubernetes_schemas() -> None:
    for manifest in placed_everywhere():
        kubernetes_validate.validate(manifest, "1.31", strict=True)


def test_a_qdrant_cluster_keeps_spreading_over_hosts_unless_its_affinity_says_otherwise() -> None:
    def affinity(pod: dict[str, Any] | None) -> dict[str, Any]:
        vector: dict[str, Any] = {"replicas": 3}
        if pod is not None:
            vector["pod"] = pod
        sts = one(render({"vectorStore": vector}), "StatefulSet")
        return dict(sts["spec"]["template"]["spec"]["affinity"])

    default = affinity(None)
    assert set(default) == {"podAntiAffinity"}
    with_nodes = affinity({"affinity": PLACEMENT["affinity"]})
    assert with_nodes == {**default, **PLACEMENT["affinity"]}
    own = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": []}}
    assert affinity({"affinity": own}) == own


def test_the_placement_of_one_component_stays_off_the_others() -> None:
    manifests = render({**EVERY_POD, "server": {"pod": {"nodeSelector": {"pool": "web"}}}}, POLICIES)
    for manifest in workloads(manifests):
        for spec in pod_specs(manifest):
            placed = "nodeSelector" in spec
            assert placed == (manifest["kind"] == "Deployment"), manifest["metadata"]["name"]


def test_a_store_without_the_new_fields_renders_its_pods_as_before() -> None:
    """Nothing is added to a pod of a store that sets no placement and no pull secret."""
    for name, spec in REPRESENTATIVE_SPECS.items():
        for manifest in workloads(render(spec, POLICIES)):
            for template in pod_templates(manifest):
                assert not NEW_POD_FIELDS & set(template["spec"]), (name, manifest["metadata"]["name"])
                annotations = set(template["metadata"].get("annotations", {}))
                assert annotations <= {"memory-operator.io/config-checksum"}, name
                if "affinity" in template["spec"]:
                    assert manifest["kind"] == "StatefulSet" and set(template["spec"]["affinity"]) == {
                        "podAntiAffinity"
                    }


@pytest.mark.parametrize("key", ["UPPER/x", "a/b/c", "-lead", ""])
def test_bad_label_keys_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="not a label or annotation key"):
        make_store({"server": {"pod": {"labels": {key: "v"}}}})


# --- jobs -------------------------------------------------------------------------------------


def test_jobs_have_cpu_and_memory_limits_by_default_and_take_the_store_s_resources() -> None:
    for label, container in containers(render(EVERY_POD, POLICIES)):
        if label.startswith(("Job/", "CronJob/")):
            assert container["resources"] == {
                "requests": {"cpu": "50m", "memory": "128Mi"},
                "limits": {"cpu": "1", "memory": "512Mi"},
            }, label
    mine = {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}}
    for label, container in containers(render({**EVERY_POD, "jobs": {"resources": mine}}, POLICIES)):
        if label.startswith(("Job/", "CronJob/")):
            assert container["resources"] == mine, label


def test_the_jobs_service_account_carries_the_store_s_annotations_and_no_token() -> None:
    role = {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/memory-backups"}
    store = make_store({"jobs": {"serviceAccount": {"annotations": role}}})
    account = jobs.service_account(store)
    assert account["kind"] == "ServiceAccount"
    assert account["metadata"]["name"] == names.jobs_service_account_name(store) == "mem-jobs"
    assert account["metadata"]["namespace"] == "agents"
    assert account["metadata"]["annotations"] == role
    assert account["automountServiceAccountToken"] is False
    assert account["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "memory-operator"
    assert "annotations" not in jobs.service_account(make_store({}))["metadata"]
    kubernetes_validate.validate(account, "1.31", strict=True)


def test_s3_backups_without_a_credentials_secret_take_the_sdk_s_own_credentials() -> None:
    s3 = {"bucket": "memories", "region": "eu-west-1"}
    spec = {"backup": {"destination": {"s3": s3}}, "bootstrap": {"fromBackup": {"name": "nightly-1"}}}
    manifests = render(spec)
    backup_jobs = [m for m in manifests if m["kind"] == "Job" and "collection" not in m["metadata"]["name"]]
    assert len(backup_jobs) == 2  # the backup and the restore
    for job in backup_jobs:
        variables = env_of(job["spec"]["template"]["spec"]["containers"][0])
        assert env.BACKUP_S3_BUCKET in variables
        assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(variables), job["metadata"]["name"]
    with_keys = render({"backup": {"destination": {"s3": {**s3, "credentialsSecret": "s3-keys"}}}})
    (job,) = [m for m in with_keys if m["kind"] == "Job" and "collection" not in m["metadata"]["name"]]
    assert env_of(job["spec"]["template"]["spec"]["containers"][0])["AWS_ACCESS_KEY_ID"] == {
        "secretKeyRef": {"name": "s3-keys", "key": "AWS_ACCESS_KEY_ID"}
    }


# --- metrics ------------------------------------------------------------------------------------


def test_the_qdrant_network_policy_admits_the_metrics_scraper_on_the_rest_port_only() -> None:
    scraper = Scraper(
        namespace_labels={"kubernetes.io/metadata.name": "monitoring"},
        pod_labels={"app.kubernetes.io/name": "prometheus"},
    )
    settings = RenderSettings(operator_namespace="memory-operator", metrics_scraper=scraper)
    name = names.qdrant_network_policy_name(make_store())
    policy = one(render({}, settings=settings), "NetworkPolicy", name)
    rule = policy["spec"]["ingress"][-1]
    assert rule == {
        "from": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
            }
        ],
        "ports": [{"protocol": "TCP", "port": env.QDRANT_HTTP_PORT}],
    }
    without = one(render({}), "NetworkPolicy", name)
    assert without["spec"]["ingress"] == policy["spec"]["ingress"][:-1]


# --- the flags --------------------------------------------------------------------------------


def test_the_render_command_takes_the_operator_s_image_and_scraper_flags(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    store = make_store({"imagePullSecrets": [{"name": "team-pull"}]})
    path = tmp_path / "store.yaml"
    path.write_text(yaml.safe_dump(store.model_dump(by_alias=True, exclude_none=True, mode="json")))
    code = main(
        [
            "render", "-f", str(path), "--no-secrets",
            "--image-registry", REGISTRY,
            "--image-pull-secret", "mirror-pull,other-pull",
            "--metrics-pod-selector", "app.kubernetes.io/name=prometheus",
        ]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    manifests = [d for d in yaml.safe_load_all(out) if d]
    for label, container in containers(manifests):
        assert container["image"].startswith(REGISTRY + "/"), label
    sts = one(manifests, "StatefulSet")
    assert [s["name"] for s in sts["spec"]["template"]["spec"]["imagePullSecrets"]] == [
        "mirror-pull",
        "other-pull",
        "team-pull",
    ]
    policy = one(manifests, "NetworkPolicy")
    assert policy["spec"]["ingress"][-1]["from"] == [
        {
            "namespaceSelector": {"matchLabels": {}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        }
    ]


def parsed_flags(*argv: str) -> Any:
    parser = argparse.ArgumentParser()
    deployment.add_arguments(parser, from_env=True)
    return parser.parse_args(list(argv))


def test_the_operator_reads_the_same_settings_from_its_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (deployment.IMAGE_REGISTRY, deployment.IMAGE_PULL_SECRETS, deployment.METRICS_POD_SELECTOR):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(deployment.METRICS_NAMESPACE_SELECTOR, "")
    # nothing set, nothing changes
    assert RenderSettings(**deployment.render_settings(parsed_flags())) == RenderSettings()
    monkeypatch.setenv(deployment.IMAGE_REGISTRY, REGISTRY)
    monkeypatch.setenv(deployment.IMAGE_PULL_SECRETS, "mirror-pull")
    monkeypatch.setenv(deployment.METRICS_NAMESPACE_SELECTOR, "kubernetes.io/metadata.name=monitoring")
    settings = RenderSettings(**deployment.render_settings(parsed_flags()))
    assert settings.image_registry == REGISTRY
    assert tuple(settings.image_pull_secrets) == ("mirror-pull",)
    assert settings.metrics_scraper == Scraper(namespace_labels={"kubernetes.io/metadata.name": "monitoring"})
    assert settings.jobs_image == images.relocate(images.DEFAULT_JOB_IMAGE, REGISTRY)


def test_a_malformed_selector_is_refused() -> None:
    with pytest.raises(SystemExit):
        parsed_flags("--metrics-pod-selector", "prometheus")
