"""`pdconnect serve`, `worker`, `migrate` and `sandbox`: the commands that run something.

`serve` runs the web app under uvicorn, its dispatcher as a `pdconnect worker` child process
(app/cli/worker_child.py) and, when no PagerDuty app is configured, the PagerDuty sandbox beside
them with a demo tenant. The sandbox is a separate distribution (pdconnect's `sandbox` extra)
that the product never imports: it is run as a process of its own, and may be missing, as in
the production image.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from app import heap
from app.cli.environment import (
    SANDBOX_APP_ID,
    SANDBOX_CLIENT_ID,
    environment,
    migrate,
    resolve,
)
from app.cli.worker_child import WorkerChild
from app.composition import connected, run_worker
from app.config.model import Config
from app.tenants import store
from app.tenants.keys import issue_ingest_key
from app.tenants.links import issue_login_link

DEMO_EXTERNAL_ID = "demo"
REQUEST_DRAIN_SECONDS = 10


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"error: the PagerDuty sandbox exited (status {process.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"error: the PagerDuty sandbox did not start listening on port {port}")


SANDBOX_MISSING = (
    "error: the PagerDuty sandbox (pdsandbox) is not installed: `pip install -e ./sandbox` in a "
    "pdconnect checkout (`make run` does it), or configure your PagerDuty app instead"
)


def _sandbox_argv(port: int) -> list[str]:
    if importlib.util.find_spec("pdsandbox") is None:
        raise SystemExit(SANDBOX_MISSING)
    return [sys.executable, "-m", "pdsandbox", "--port", str(port)]


def sandbox_state_file(env: Mapping[str, str], data_dir: Path) -> Path | None:
    """Where the sandbox keeps its accounts, grants, keys and incidents across restarts, so a
    connection made before a restart still delivers after it: PDCONNECT_SANDBOX_STATE_FILE,
    by default in the data directory; set empty, the sandbox starts afresh each time (the
    benchmarks do: a state write pauses the sandbox, which would show in their timings)."""
    chosen = env.get("PDCONNECT_SANDBOX_STATE_FILE")
    if chosen is None:
        return data_dir / "sandbox-state.json"
    return Path(chosen) if chosen else None


def _start_sandbox(config: Config, port: int, state: Path | None) -> subprocess.Popen[bytes]:
    assert config.pagerduty_client_secret is not None
    # The sandbox stops by itself should this process be killed outright (no code of ours runs
    # then to stop it), rather than keep its port from the next `serve`.
    argv = [*_sandbox_argv(port), "--parent", str(os.getpid())]
    if state is not None:
        argv += ["--state-file", str(state)]
    env = dict(os.environ)
    env.update(
        {
            "SANDBOX_BASE_URL": f"http://127.0.0.1:{port}",
            "SANDBOX_CLIENT_ID": config.pagerduty_client_id or SANDBOX_CLIENT_ID,
            "SANDBOX_CLIENT_SECRET": config.pagerduty_client_secret,
            "SANDBOX_REDIRECT_URIS": config.oauth_redirect_uri,
            "SANDBOX_APP_ID": config.pagerduty_app_id or SANDBOX_APP_ID,
        }
    )
    process = subprocess.Popen(argv, env=env)  # noqa: S603 - our own interpreter and module
    _wait_for_port(port, process)
    return process


@dataclass(frozen=True)
class Demo:
    tenant_id: UUID
    sign_in_url: str
    # Only when the tenant is new: a key is shown once, and never again.
    ingest_key: str | None


async def _demo(config: Config) -> Demo:
    """The demo tenant (made on the first run), a new sign-in link, and its first ingest key."""
    async with connected(config) as deps:
        plaintext = None
        tenant = await store.insert_tenant(deps.db, name="Demo", external_id=DEMO_EXTERNAL_ID)
        if tenant is None:
            existing = await store.tenant_by_external_id(deps.db, DEMO_EXTERNAL_ID)
            assert existing is not None
            tenant_id = existing.id
        else:
            tenant_id = tenant.id
            _, plaintext = await issue_ingest_key(deps.db, deps.ingest_key_hasher, tenant_id)
        link = await issue_login_link(
            deps.db,
            deps.link_signer,
            base_url=config.base_url,
            tenant_id=tenant_id,
            now=deps.clock(),
        )
        return Demo(tenant_id, link.url, plaintext)


def demo_box(demo: Demo, base_url: str) -> str:
    """What a new user needs, framed so it stands out in the terminal. The lines that hold a
    secret keep their own words (tests and people search for them); no right border, so a
    long link is never cut or padded."""
    pdconnect = ".venv/bin/pdconnect"
    lines = [f"pdconnect is ready at {base_url}", ""]
    lines.append(f"Sign in to the demo tenant's settings page: {demo.sign_in_url}")
    lines.append("  (works once, for 15 minutes)")
    if demo.ingest_key is not None:
        lines.append(f"Demo tenant ingest key (shown once): {demo.ingest_key}")
    lines += [
        "",
        f"Demo tenant id: {demo.tenant_id}",
        f"  another sign-in link: {pdconnect} tenant login-link {demo.tenant_id}",
        f"  another ingest key:   {pdconnect} tenant ingest-key {demo.tenant_id}",
        "Stop with Ctrl-C; `make run` again keeps the tenant, its connection and the sandbox.",
    ]
    rule = "─" * 76
    return "\n".join(["╭" + rule, *(f"│ {line}".rstrip() for line in lines), "╰" + rule])


def _reachable(host: str) -> str:
    """Where this machine reaches a server bound to `host` (any address: loopback)."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host  # noqa: S104 - compared only


def _announce_when_listening(host: str, port: int, text: str, timeout: float = 60.0) -> None:
    """Prints `text` once the server takes connections: after the start-up lines, so it is the
    last thing on screen (and the link works when it is seen)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.1)
    print(text, flush=True)


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(0)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.web.protocol import CONCURRENCY_LIMIT, LimitedHttpToolsProtocol

    env = environment()
    config, defaults = resolve(
        env,
        base_url=env.get("BASE_URL") or f"http://{args.host}:{args.port}",
        sandbox_port=args.sandbox_port,
    )
    asyncio.run(migrate(config))
    # PDCONNECT_RUN_DISPATCHER=0 where separate `pdconnect worker`s deliver (deploy/ does so).
    run_dispatcher = env.get("PDCONNECT_RUN_DISPATCHER", "1") != "0"
    metrics_dir = None
    if run_dispatcher or args.workers > 1:
        metrics_dir = _share_metrics(config.data_dir)
    # Uvicorn re-raises SIGTERM after its graceful shutdown; exiting through SystemExit then
    # lets the dispatcher, the sandbox and the embedded PostgreSQL be stopped on the way out.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    sandbox = None
    dispatcher = None
    try:
        if run_dispatcher:
            # Started first: it gets ready while the sandbox starts. It reads its settings as
            # `serve` resolved them, defaults included.
            dispatcher = WorkerChild({**defaults, **os.environ})
            dispatcher.start()
        if config.sandbox:
            sandbox = _start_sandbox(
                config, args.sandbox_port, sandbox_state_file(env, config.data_dir)
            )
            print(
                f"Sandbox PagerDuty at http://127.0.0.1:{args.sandbox_port} "
                "(no PagerDuty app is configured)",
                flush=True,
            )
            demo = asyncio.run(_demo(config))
            threading.Thread(
                target=_announce_when_listening,
                args=(_reachable(args.host), args.port, demo_box(demo, config.base_url)),
                daemon=True,
            ).start()
        # Workers are separate processes that read settings from the environment: hand them
        # every default filled in here, so they see exactly the settings checked above.
        for name, value in defaults.items():
            os.environ.setdefault(name, value)
        if dispatcher is not None:
            # The web processes serve only; the child delivers. Listening first: an alert
            # accepted by a server that says it is up is on its way to PagerDuty at once.
            os.environ["PDCONNECT_RUN_DISPATCHER"] = "0"
            dispatcher.wait_listening()
        uvicorn.run(
            "app.main:app_factory",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            # X-Forwarded-* are applied by the app, from PDCONNECT_TRUSTED_PROXIES only.
            proxy_headers=False,
            # Limits on request heads and idle connections (app/web/protocol.py).
            http=LimitedHttpToolsProtocol,
            limit_concurrency=CONCURRENCY_LIMIT,
            # On SIGTERM: requests in progress get this long, then the dispatcher is told to
            # stop claiming and waits for its sends (at most a lease); the whole stays within
            # the 45 s that deploy/ gives a process to stop.
            timeout_graceful_shutdown=REQUEST_DRAIN_SECONDS,
            # Every worker process configures its logging from this (JSON, redacted)...
            log_config=args.log_config,
            # ...and ours (app/web/access_log.py) leaves sign-in tokens and ingest keys out.
            access_log=False,
        )
    finally:
        if dispatcher is not None:
            dispatcher.stop()
        if sandbox is not None:
            sandbox.terminate()
            sandbox.wait(timeout=10)
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _share_metrics(data_dir: Path) -> Path | None:
    """The dispatcher's process and uvicorn's worker processes each count their own requests
    and deliveries; with a directory for prometheus-client shared with them, `/metrics` from
    any web process sums them all. One directory per `serve`, so that two of them on one data
    directory do not empty each other's; those of a `serve` that is gone are removed."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    parent = data_dir / "metrics"
    if parent.is_dir():
        for stale in parent.iterdir():
            if not (stale.name.isdigit() and _running(int(stale.name))):
                shutil.rmtree(stale, ignore_errors=True)
    directory = parent / str(os.getpid())
    # Samples of an earlier process with this PID would be counted again.
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    return directory


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # no signal: only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    return True


def cmd_worker(args: argparse.Namespace) -> int:
    config, _ = resolve(environment())
    asyncio.run(migrate(config))
    # On the event loop `serve` runs its dispatcher on (uvicorn picks uvloop when installed, as
    # it is with uvicorn[standard]): the dispatcher's sends are mostly event-loop and socket
    # work, which uvloop does for a fraction of the CPU.
    heap.settle()
    listening = None if args.ready_fd is None else functools.partial(_say_ready, args.ready_fd)
    with asyncio.Runner(loop_factory=_fast_loop()) as runner:
        runner.run(run_worker(config, parent=args.parent, listening=listening))
    return 0


def _say_ready(fd: int) -> None:
    """Tells `serve`, which waits on the other end of the pipe, that this worker listens."""
    with contextlib.suppress(OSError), os.fdopen(fd, "wb") as pipe:
        pipe.write(b"listening\n")


def _fast_loop() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def cmd_migrate(args: argparse.Namespace) -> int:
    config, _ = resolve(environment())
    asyncio.run(migrate(config))
    print("migrations applied", flush=True)
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    argv = _sandbox_argv(args.port)
    env = dict(os.environ)
    env.setdefault("SANDBOX_BASE_URL", f"http://127.0.0.1:{args.port}")
    # Replaced by the sandbox, so that signals and the exit status are its own.
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)  # noqa: S606 - our own interpreter and module
