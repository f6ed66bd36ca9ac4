"""Ports agree from the outside in (Ingress → Service → container → `serve --port`), and every
way of stopping a worker waits out the dispatcher's lease."""

from __future__ import annotations

import re

from tests.deploy.product import dispatcher_lease_seconds, pdconnect
from tests.deploy.sources import (
    GUIDE,
    compose,
    container_port,
    env_value,
    final_stage,
    named,
    of_kind,
    only_container,
    unit,
)


def _serve_port() -> int:
    (cmd,) = final_stage("CMD")
    port: int = pdconnect(cmd.exec_form()).port
    return port


def test_web_port_is_the_same_everywhere() -> None:
    port = _serve_port()
    web = named("Deployment", "pdconnect-web")
    container = only_container(web)
    assert pdconnect(container["args"]).port == port
    assert container_port(container, "http") == port
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container_port(container, container[probe]["httpGet"]["port"]) == port
    annotations = web["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == port
    service = named("Service", "pdconnect-web")
    by_name = {p["name"]: p for p in service["spec"]["ports"]}
    assert container_port(container, by_name["http"]["targetPort"]) == port
    (ingress,) = of_kind("Ingress")
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            assert path["backend"]["service"]["port"]["name"] in by_name
    assert pdconnect(compose()["services"]["web"]["command"]).port == port


def test_worker_metrics_port_is_the_same_everywhere() -> None:
    worker = named("Deployment", "pdconnect-worker")
    container = only_container(worker)
    port = int(env_value(container, "PDCONNECT_METRICS_PORT") or 0)
    assert env_value(container, "PDCONNECT_METRICS_HOST") == "0.0.0.0"  # noqa: S104 - scraped
    assert container_port(container, "metrics") == port
    assert int(worker["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"]) == port
    assert int(compose()["services"]["worker"]["environment"]["PDCONNECT_METRICS_PORT"]) == port


def test_systemd_web_port_is_the_one_the_guide_proxies_to() -> None:
    (command,) = unit("pdconnect.service")["Service"]["ExecStart"]
    args = pdconnect(command.split()[1:])
    upstreams = re.findall(r"proxy_pass http://([\d.]+):(\d+);", GUIDE.read_text(encoding="utf-8"))
    assert upstreams == [(args.host, str(args.port))]


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)\s*(s|sec|min)?", value.strip())
    assert match, f"unsupported duration {value!r}"
    return float(match.group(1)) * (60 if match.group(2) == "min" else 1)


def test_stopping_a_worker_waits_out_the_dispatcher_lease() -> None:
    lease = dispatcher_lease_seconds()
    for name in ("pdconnect-web", "pdconnect-worker"):
        spec = named("Deployment", name)["spec"]["template"]["spec"]
        assert spec["terminationGracePeriodSeconds"] > lease, name
    for service in ("web", "worker"):
        assert _seconds(compose()["services"][service]["stop_grace_period"]) > lease, service
    (timeout,) = unit("pdconnect-worker.service")["Service"]["TimeoutStopSec"]
    assert _seconds(timeout) > lease
