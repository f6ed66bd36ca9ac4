"""The guides' commands still work: `make` targets exist, every `pdconnect` command parses,
and every kubectl command names resources, labels, keys and paths the manifests have."""

from __future__ import annotations

import itertools
import re
import shlex

from tests.deploy.product import pdconnect
from tests.deploy.sources import (
    GUIDE,
    ROOT,
    Doc,
    guide_shell_lines,
    kustomization,
    manifests,
    named,
    secret_key_refs,
    workloads,
)

SHELL_OPERATORS = {"|", "||", "&&", ";", ">", "<", ")"}
KINDS = {"deployment": "Deployment", "deploy": "Deployment", "job": "Job", "svc": "Service"}


def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Za-z0-9_.-]+):(?!=)", text, flags=re.MULTILINE))


def test_the_readme_make_commands_are_makefile_targets() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    used = set(re.findall(r"^make ([a-z-]+)", readme, flags=re.MULTILINE))
    assert {"run", "test"} <= used
    assert used <= _make_targets()


def _command_starts(words: list[str]) -> set[int]:
    """Where a command begins: the line's start, after an operator, `sudo` or kubectl's `--`,
    and after `docker compose … exec|run SERVICE`."""
    starts = {0}
    for i, word in enumerate(words):
        if word in SHELL_OPERATORS or word in ("sudo", "--", "$("):
            starts.add(i + 1)
        if word in ("exec", "run") and words[0] == "docker":
            starts.add(i + 2)
    return starts


def _pdconnect_commands() -> list[list[str]]:
    """`pdconnect …` in the guide's shell blocks and inline code."""
    commands: list[list[str]] = []
    lines = list(guide_shell_lines())
    lines += re.findall(r"`(pdconnect [^`]*)`", GUIDE.read_text(encoding="utf-8"))
    for line in lines:
        words = list(shlex.shlex(line, posix=True, punctuation_chars=True))
        for start in sorted(_command_starts(words)):
            word = words[start] if start < len(words) else ""
            if word == "pdconnect" or word.endswith("/bin/pdconnect"):
                rest = words[start + 1 :]
                end = next((i for i, w in enumerate(rest) if w in SHELL_OPERATORS), len(rest))
                commands.append(rest[:end])
    return commands


def test_every_pdconnect_command_in_the_guide_parses() -> None:
    commands = _pdconnect_commands()
    assert {pdconnect(argv).command for argv in commands} >= {
        "serve",
        "worker",
        "migrate",
        "keygen",
        "tenant",
    }


def _kubectl_lines() -> list[list[str]]:
    return [shlex.split(line) for line in guide_shell_lines() if line.startswith("kubectl ")]


def test_kubectl_commands_name_resources_that_exist() -> None:
    referenced = [
        (KINDS[kind], name)
        for words in _kubectl_lines()
        for before, word in itertools.pairwise(words)
        for kind, name in re.findall(r"^([a-z]+)/([a-z0-9-]+)$", word)
        if kind in KINDS and before not in ("-k", "-f")
    ]
    assert ("Job", "pdconnect-migrate") in referenced
    for kind, name in referenced:
        named(kind, name)
    for words in _kubectl_lines():
        if "-k" in words:
            assert (ROOT / words[words.index("-k") + 1] / "kustomization.yaml").is_file()


def _selects(selector: str, doc: Doc) -> bool:
    """Equality selectors (`k=v,k2=v2`), the kind every kubectl command accepts."""
    labels = doc["metadata"].get("labels", {})
    requirements = [part.split("=", 1) for part in selector.split(",")]
    return all(labels.get(key) == value for key, value in requirements)


def test_migrations_first_applies_the_job_and_the_settings_it_needs() -> None:
    selectors = [
        words[words.index("-l") + 1]
        for words in _kubectl_lines()
        if "apply" in words and "-l" in words
    ]
    assert selectors, "the guide applies the migration Job on its own first"
    job = named("Job", "pdconnect-migrate")
    needed = {("Job", "pdconnect-migrate")} | {
        ("ConfigMap", source["configMapRef"]["name"])
        for source in job["spec"]["template"]["spec"]["containers"][0]["envFrom"]
    }
    chosen = set()
    for selector in selectors:
        picked = {(d["kind"], d["metadata"]["name"]) for d in manifests() if _selects(selector, d)}
        assert picked, f"-l {selector} applies nothing"
        chosen |= picked
    assert chosen == needed


def test_the_secret_the_guide_creates_has_every_key_the_pods_need() -> None:
    created = set(re.findall(r"--from-literal=([A-Z_]+)=", GUIDE.read_text(encoding="utf-8")))
    referenced = {
        ref["key"]
        for workload in workloads()
        for container in workload["spec"]["template"]["spec"]["containers"]
        for ref in secret_key_refs(container).values()
    }
    assert created == referenced


def test_the_guide_builds_the_image_the_kustomization_deploys() -> None:
    (image,) = kustomization()["images"]
    tag = f"{image['newName']}:{image['newTag']}"
    assert f"docker build -f deploy/Dockerfile -t {tag} ." in GUIDE.read_text(encoding="utf-8")
