"""The Kubernetes manifests hang together, hold no secret, and run pods locked down."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.deploy.product import pdconnect, secret_settings
from tests.deploy.sources import (
    Doc,
    image_entrypoint,
    image_env,
    image_user,
    kustomization,
    manifest_files,
    manifests,
    named,
    of_kind,
    only_container,
    pod_spec,
    secret_key_refs,
    workloads,
)

SECRET_NAME = "pdconnect"


def _workload_id(doc: Doc) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def test_kustomization_lists_every_manifest_and_sets_no_namespace() -> None:
    listed = kustomization()["resources"]
    assert sorted(listed) == [p.name for p in manifest_files()]
    assert "namespace" not in kustomization()
    for doc in manifests():
        assert "namespace" not in doc["metadata"], _workload_id(doc)


def test_kustomization_names_the_image_every_workload_runs() -> None:
    (image,) = kustomization()["images"]
    for workload in workloads():
        assert only_container(workload)["image"] == image["name"], _workload_id(workload)


def test_workloads_run_the_expected_pdconnect_commands() -> None:
    # No `command:`: it would replace the image's entrypoint (tini, then pdconnect).
    commands = {}
    for workload in workloads():
        container = only_container(workload)
        assert "command" not in container, _workload_id(workload)
        argv = image_entrypoint()[-1:] + container["args"]
        assert argv[0] == "pdconnect"
        commands[_workload_id(workload)] = pdconnect(argv[1:]).command
    assert commands == {
        "Deployment/pdconnect-web": "serve",
        "Deployment/pdconnect-worker": "worker",
        "Job/pdconnect-migrate": "migrate",
    }


def test_web_pods_only_serve_while_workers_deliver() -> None:
    web = only_container(named("Deployment", "pdconnect-web"))
    assert {"name": "PDCONNECT_RUN_DISPATCHER", "value": "0"} in web["env"]
    worker = only_container(named("Deployment", "pdconnect-worker"))
    assert all(item["name"] != "PDCONNECT_RUN_DISPATCHER" for item in worker["env"])


@pytest.mark.parametrize("workload", workloads(), ids=_workload_id)
def test_pods_are_locked_down(workload: Doc) -> None:
    spec = pod_spec(workload)
    uid, gid = image_user()
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert (pod["runAsUser"], pod["runAsGroup"], pod["fsGroup"]) == (uid, gid, gid)
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    container = only_container(workload)
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert set(container["resources"]) == {"requests", "limits"}
    # With a read-only root, /tmp and the data directory are the writable places.
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    for path in ("/tmp", image_env()["PDCONNECT_DATA_DIR"]):  # noqa: S108 - a mount point
        assert "emptyDir" in mounts[path], f"{path} is not an emptyDir"


def test_secrets_are_only_referenced() -> None:
    assert of_kind("Secret") == []
    secrets = secret_settings()
    for configmap in of_kind("ConfigMap"):
        assert not set(configmap["data"]) & secrets, "a secret setting in a ConfigMap"
    keys_per_workload = set()
    for workload in workloads():
        container = only_container(workload)
        for item in container["env"]:
            assert not (item["name"] in secrets and "value" in item), item["name"]
        refs = secret_key_refs(container)
        assert all(ref["name"] == SECRET_NAME for ref in refs.values())
        assert all(name == ref["key"] for name, ref in refs.items())
        keys_per_workload.add(frozenset(refs))
        for source in container["envFrom"]:
            assert "secretRef" not in source, "take secrets key by key"
            named("ConfigMap", source["configMapRef"]["name"])
    # The same Secret keys in every workload: a key left out of one would stop that tier alone.
    (keys,) = keys_per_workload
    assert {"DATABASE_URL", "SECRET_KEY", "ENCRYPTION_KEYS", "ADMIN_TOKEN"} <= keys


def test_selectors_and_references_point_at_what_exists() -> None:
    for name in ("pdconnect-web", "pdconnect-worker"):
        deployment = named("Deployment", name)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        pdb = named("PodDisruptionBudget", name)
        assert (
            pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
        )
        target = named("HorizontalPodAutoscaler", name)["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", name)
    web_labels = named("Deployment", "pdconnect-web")["spec"]["template"]["metadata"]["labels"]
    assert named("Service", "pdconnect-web")["spec"]["selector"].items() <= web_labels.items()


def test_ingress_serves_base_url_over_tls_through_the_web_service() -> None:
    (ingress,) = of_kind("Ingress")
    (configmap,) = of_kind("ConfigMap")
    base_url = urlsplit(configmap["data"]["BASE_URL"])
    assert base_url.scheme == "https"
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == base_url.hostname
    assert any(rule["host"] in tls["hosts"] for tls in ingress["spec"]["tls"])
    service = named("Service", "pdconnect-web")
    port_names = {p["name"] for p in service["spec"]["ports"]}
    for path in rule["http"]["paths"]:
        backend = path["backend"]["service"]
        assert backend["name"] == "pdconnect-web"
        assert backend["port"]["name"] in port_names


def test_migration_job_is_retried_a_few_times_and_cleaned_up() -> None:
    job = named("Job", "pdconnect-migrate")
    assert 1 <= job["spec"]["backoffLimit"] <= 6
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    assert job["spec"]["activeDeadlineSeconds"] > 0
    assert pod_spec(job)["restartPolicy"] in ("Never", "OnFailure")
