"""The systemd units: migrations first, then web and worker, from one install and one
settings file, as an unprivileged user; `systemd-analyze verify` finds nothing to say."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.product import pdconnect
from tests.deploy.sources import SYSTEMD, Unit, unit, unit_values

WEB = "pdconnect.service"
WORKER = "pdconnect-worker.service"
MIGRATE = "pdconnect-migrate.service"
UNITS = (WEB, WORKER, MIGRATE)
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
MISSING_EXECUTABLE = re.compile(r"^\S+: Command \S+ is not executable: No such file or directory$")


def _exec_start(sections: Unit) -> list[str]:
    (command,) = sections["Service"]["ExecStart"]
    return shlex.split(command)


def test_each_unit_runs_its_pdconnect_command() -> None:
    commands = {}
    for name in UNITS:
        program, *args = _exec_start(unit(name))
        assert program.endswith("/.venv/bin/pdconnect"), program
        commands[name] = pdconnect(args).command
    assert commands == {WEB: "serve", WORKER: "worker", MIGRATE: "migrate"}


def test_all_units_share_one_install_one_settings_file_and_a_non_root_user() -> None:
    shared = {
        (
            _exec_start(unit(name))[0],
            *(tuple(unit(name)["Service"][key]) for key in ("EnvironmentFile", "User", "Group")),
        )
        for name in UNITS
    }
    assert len(shared) == 1
    assert unit(WEB)["Service"]["User"] != ["root"]


def test_web_and_worker_start_only_after_migrations_succeeded() -> None:
    assert unit(MIGRATE)["Service"]["Type"] == ["oneshot"]
    assert "Install" not in unit(MIGRATE), "pulled in by the others, never enabled alone"
    for name in (WEB, WORKER):
        assert MIGRATE in unit_values(unit(name), "Unit", "Requires")
        assert MIGRATE in unit_values(unit(name), "Unit", "After")
        assert unit_values(unit(name), "Install", "WantedBy") == ["multi-user.target"]


def test_a_web_unit_that_does_not_deliver_brings_a_worker() -> None:
    environment = dict(
        pair.split("=", 1) for pair in unit_values(unit(WEB), "Service", "Environment")
    )
    if environment.get("PDCONNECT_RUN_DISPATCHER") == "0":
        assert WORKER in unit_values(unit(WEB), "Unit", "Wants")


def test_web_listens_on_loopback_behind_the_proxy() -> None:
    assert pdconnect(_exec_start(unit(WEB))[1:]).host == "127.0.0.1"


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_finds_nothing_but_the_absent_install(tmp_path: Path) -> None:
    # Here /opt/pdconnect is not installed; every other remark would be a real mistake.
    assert _verify([SYSTEMD / name for name in UNITS]) == []
    # And it does find mistakes: a misspelt key in a copy.
    broken = tmp_path / WORKER
    text = (SYSTEMD / WORKER).read_text(encoding="utf-8")
    broken.write_text(text.replace("Restart=on-failure", "Restrat=on-failure"), encoding="utf-8")
    assert any("Restrat" in line for line in _verify([broken]))


def _verify(paths: list[Path]) -> list[str]:
    assert SYSTEMD_ANALYZE is not None
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [SYSTEMD_ANALYZE, "verify", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = (result.stdout + result.stderr).splitlines()
    return [line for line in lines if line.strip() and not MISSING_EXECUTABLE.match(line)]
