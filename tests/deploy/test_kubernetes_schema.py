"""Every Kubernetes manifest is valid against the API's own schemas, strictly (no unknown
field), offline, for a fixed Kubernetes version whose schemas ship with kubernetes-validate."""

from __future__ import annotations

import copy
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from tests.deploy.sources import K8S, Doc, manifest_files, named, yaml_documents

KUBERNETES_VERSION = "1.37.0"


def validate(doc: Doc) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: p.name)
def test_manifest_is_valid_kubernetes(path: Path) -> None:
    docs = yaml_documents(path)
    assert docs, f"{path.name} has no document"
    for doc in docs:
        validate(doc)


def _misspelt_container_field(doc: Doc) -> None:
    doc["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"


def _misspelt_pod_field(doc: Doc) -> None:
    doc["spec"]["template"]["spec"]["terminationGracePeriodSecond"] = 45


def _wrong_type(doc: Doc) -> None:
    doc["spec"]["replicas"] = "two"


def _missing_required(doc: Doc) -> None:
    del doc["spec"]["selector"]


@pytest.mark.parametrize(
    "breakage", [_misspelt_container_field, _misspelt_pod_field, _wrong_type, _missing_required]
)
def test_a_broken_deployment_is_refused(breakage: Callable[[Doc], None]) -> None:
    broken = copy.deepcopy(named("Deployment", "pdconnect-web"))
    breakage(broken)
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken)


KUBECTL = shutil.which("kubectl")


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_the_kustomization_builds_valid_manifests() -> None:
    assert KUBECTL is not None
    built = subprocess.run(  # noqa: S603 - fixed arguments
        [KUBECTL, "kustomize", str(K8S)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    docs = [doc for doc in yaml.safe_load_all(built) if doc]
    assert len(docs) == sum(len(yaml_documents(p)) for p in manifest_files())
    for doc in docs:
        validate(doc)
