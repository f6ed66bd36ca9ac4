"""The deploy files, read the way their own tools read them.

YAML with `yaml.safe_load_all`; the Dockerfile as instructions (continuations joined, exec
forms as JSON); systemd units as sections of repeatable keys; env files as KEY=VALUE lines,
commented-out ones included since they name settings too.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
SYSTEMD = DEPLOY / "systemd"
GUIDE = DEPLOY / "README.md"
KUSTOMIZATION = K8S / "kustomization.yaml"

Doc = dict[str, Any]

ENV_LINE = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$")
# A settings-like name: upper case with at least one underscore (so not `ALL` or `SIGTERM`).
ENV_NAME = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")


def yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p != KUSTOMIZATION)


def manifests() -> list[Doc]:
    return [doc for path in manifest_files() for doc in yaml_documents(path)]


def kustomization() -> Doc:
    (doc,) = yaml_documents(KUSTOMIZATION)
    assert isinstance(doc, dict)
    return doc


def of_kind(kind: str) -> list[Doc]:
    return [doc for doc in manifests() if doc["kind"] == kind]


def named(kind: str, name: str) -> Doc:
    found = [doc for doc in of_kind(kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name!r}, found {len(found)}"
    return found[0]


def workloads() -> list[Doc]:
    """Everything that runs pods: the Deployments and the Job."""
    return [doc for doc in manifests() if doc["kind"] in ("Deployment", "Job")]


def pod_spec(workload: Doc) -> Doc:
    spec: Doc = workload["spec"]["template"]["spec"]
    return spec


def only_container(workload: Doc) -> Doc:
    (container,) = pod_spec(workload)["containers"]
    assert isinstance(container, dict)
    return container


def container_port(container: Doc, name_or_number: str | int) -> int:
    if isinstance(name_or_number, int):
        return name_or_number
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    port: int = ports[name_or_number]
    return port


def env_value(container: Doc, name: str) -> str | None:
    for item in container.get("env", []):
        if item["name"] == name:
            value: str | None = item.get("value")
            return value
    return None


def secret_key_refs(container: Doc) -> dict[str, Doc]:
    """Env name → its secretKeyRef, for every variable taken from a Secret."""
    return {
        item["name"]: item["valueFrom"]["secretKeyRef"]
        for item in container.get("env", [])
        if "secretKeyRef" in item.get("valueFrom", {})
    }


def compose() -> Doc:
    (doc,) = yaml_documents(DEPLOY / "compose.yaml")
    assert isinstance(doc, dict)
    return doc


def env_file(path: Path) -> dict[str, str]:
    """KEY → value of every `KEY=value` line, commented-out ones included."""
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = ENV_LINE.match(line.strip())
        if match:
            found[match.group(1)] = match.group(2)
    return found


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str

    def exec_form(self) -> list[str]:
        """The JSON array of CMD, ENTRYPOINT or HEALTHCHECK … CMD (shell form is refused)."""
        text = self.value.split(" CMD ", 1)[1] if self.keyword == "HEALTHCHECK" else self.value
        argv = json.loads(text)
        assert isinstance(argv, list)
        assert all(isinstance(a, str) for a in argv)
        return argv


def dockerfile_instructions() -> list[Instruction]:
    found: list[Instruction] = []
    logical = ""
    for raw in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        keyword, _, value = (logical + line).partition(" ")
        found.append(Instruction(keyword.upper(), value.strip()))
        logical = ""
    return found


def dockerfile_stages() -> list[list[Instruction]]:
    """The Dockerfile's stages, each starting with its FROM."""
    stages: list[list[Instruction]] = []
    for instruction in dockerfile_instructions():
        if instruction.keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
        else:
            assert instruction.keyword == "ARG", f"{instruction.keyword} before the first FROM"
    return stages


def base_images() -> list[str]:
    """Each stage's base image, with the global ARGs' defaults filled in."""
    defaults: dict[str, str] = {}
    images: list[str] = []
    for instruction in dockerfile_instructions():
        if instruction.keyword == "ARG" and not images:
            name, _, default = instruction.value.partition("=")
            defaults[name] = default
        elif instruction.keyword == "FROM":
            image = instruction.value.split()[0]
            images.append(re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], image))
    return images


def final_stage(keyword: str) -> list[Instruction]:
    return [i for i in dockerfile_stages()[-1] if i.keyword == keyword]


def image_entrypoint() -> list[str]:
    (entrypoint,) = final_stage("ENTRYPOINT")
    return entrypoint.exec_form()


def image_user() -> tuple[int, int]:
    """The final stage's `USER uid:gid`, which must be numeric for runAsNonRoot to be checked."""
    (user,) = final_stage("USER")
    uid, _, gid = user.value.partition(":")
    assert uid.isdigit(), f"USER {user.value}: give a numeric uid"
    assert gid.isdigit(), f"USER {user.value}: give a numeric gid too"
    return int(uid), int(gid)


def image_env() -> dict[str, str]:
    """The final stage's ENV, in its `KEY=value …` form."""
    found: dict[str, str] = {}
    for instruction in final_stage("ENV"):
        for pair in shlex.split(instruction.value):
            key, sep, value = pair.partition("=")
            assert sep, f"ENV {instruction.value!r}: use the KEY=value form"
            found[key] = value
    return found


Unit = dict[str, dict[str, list[str]]]


def unit(name: str) -> Unit:
    """Section → key → values (systemd keys may repeat; `After=a b` is two values)."""
    sections: Unit = {}
    current: dict[str, list[str]] | None = None
    for raw in (SYSTEMD / name).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        assert current is not None, f"{name}: {line!r} outside a section"
        key, sep, value = line.partition("=")
        assert sep, f"{name}: {line!r} is not KEY=value"
        current.setdefault(key, []).append(value)
    return sections


def unit_values(sections: Unit, section: str, key: str) -> list[str]:
    """Every whitespace-separated value of a key (`After=a b` and `After=c` give a, b, c)."""
    return [word for value in sections.get(section, {}).get(key, []) for word in value.split()]


def guide_shell_lines() -> Iterator[str]:
    """Each command of the guide's shell blocks, continuations joined."""
    fence: str | None = None
    pending = ""
    for line in GUIDE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = stripped[3:] if fence is None else None
            continue
        if fence not in ("sh", "bash"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        yield pending + stripped
        pending = ""
