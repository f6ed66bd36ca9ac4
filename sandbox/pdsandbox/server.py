"""Serving the sandbox on its own, configured from the environment:

    python -m pdsandbox [--port 8900] [--state-file PATH] [--parent PID]
                                           (or the `pdsandbox` command)

Environment variables (all optional):

- `SANDBOX_BASE_URL`: the address clients reach the sandbox at, no trailing slash; URLs
  and id_token claims are built from it. Default `http://127.0.0.1:<port>`.
- `SANDBOX_CLIENT_ID`, `SANDBOX_CLIENT_SECRET`: the registered app's OAuth credentials.
  Default `sandbox-client-id` and `sandbox-client-secret`.
- `SANDBOX_REDIRECT_URIS`: comma-separated OAuth redirect URIs, matched exactly. Default
  `http://127.0.0.1:8000/pagerduty/callback,http://localhost:8000/pagerduty/callback`.
- `SANDBOX_APP_ID`: the Events Integration app id for the Simple Install Flow. Default
  `PSANDBX`; set it empty to register no app id.
- `PDSANDBOX_STATE_FILE`: keep the sandbox's state in this file across restarts, as
  `--state-file PATH` does (the option wins). Unset: nothing is kept, as before.
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import uvicorn
import uvicorn.config

from pdsandbox.app import create_sandbox_app
from pdsandbox.config import SandboxApp, SandboxConfig
from pdsandbox.persistence import StateFileError
from pdsandbox.urls import is_http_url

DEFAULT_PORT = 8900
DEFAULT_CLIENT_ID = "sandbox-client-id"
DEFAULT_CLIENT_SECRET = "sandbox-client-secret"  # noqa: S105 - a published demo credential
DEFAULT_REDIRECT_URIS = (
    "http://127.0.0.1:8000/pagerduty/callback",
    "http://localhost:8000/pagerduty/callback",
)
DEFAULT_APP_ID = "PSANDBX"
# How often a sandbox started with `--parent` looks whether that process is still its parent.
PARENT_POLL_SECONDS = 0.5


class SandboxConfigError(ValueError):
    """A sandbox environment variable is wrong; the message names it."""


def config_from_env(
    environ: Mapping[str, str] | None = None, *, port: int = DEFAULT_PORT
) -> SandboxConfig:
    env = os.environ if environ is None else environ
    base_url = env.get("SANDBOX_BASE_URL", "").strip().rstrip("/") or f"http://127.0.0.1:{port}"
    if not is_http_url(base_url):
        raise SandboxConfigError(f"SANDBOX_BASE_URL must be an http(s) URL, got {base_url!r}")
    raw_uris = env.get("SANDBOX_REDIRECT_URIS")
    uris = (
        tuple(u.strip() for u in raw_uris.split(",") if u.strip())
        if raw_uris is not None
        else DEFAULT_REDIRECT_URIS
    )
    if not uris or not all(is_http_url(u) for u in uris):
        raise SandboxConfigError("SANDBOX_REDIRECT_URIS must be a comma list of http(s) URLs")
    client_id = env.get("SANDBOX_CLIENT_ID", "").strip() or DEFAULT_CLIENT_ID
    secret = env.get("SANDBOX_CLIENT_SECRET", "").strip() or DEFAULT_CLIENT_SECRET
    app_id = env.get("SANDBOX_APP_ID", DEFAULT_APP_ID).strip() or None
    app = SandboxApp(client_id, secret, uris, app_id=app_id)
    return SandboxConfig(base_url=base_url, apps=(app,))


def state_file_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if environ is None else environ
    return env.get("PDSANDBOX_STATE_FILE", "").strip() or None


def run_sandbox(
    config: SandboxConfig,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    state_file: str | None = None,
) -> None:
    """Serve the sandbox until interrupted; with `state_file`, its state is kept there."""
    app = create_sandbox_app(config, state_file=state_file)
    uvicorn.run(app, host=host, port=port, log_level="info", log_config=log_config())


class NoQueryStrings(logging.Filter):
    """Uvicorn's access lines without their query strings: the OAuth requests carry codes,
    states and PKCE verifiers there, which no log should keep."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            client, method, path, version, status = args
            record.args = (client, method, str(path).split("?", 1)[0], version, status)
        return True


def log_config() -> dict[str, Any]:
    """Uvicorn's own logging, with `NoQueryStrings` on its access lines."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config.setdefault("filters", {})["no_query_strings"] = {
        "()": f"{NoQueryStrings.__module__}.{NoQueryStrings.__qualname__}"
    }
    config["handlers"]["access"]["filters"] = ["no_query_strings"]
    return config


def stop_without(parent: int, poll: float = PARENT_POLL_SECONDS) -> threading.Thread:
    """Stops this process (SIGTERM to itself: uvicorn's graceful shutdown) once `parent` is no
    longer its parent. A process that started the sandbox and was killed outright (SIGKILL, the
    OOM killer) ran no code to stop it, and the sandbox would keep its port: the next start
    could not have it. Polled in a daemon thread: portable, and half a second is soon enough."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll)
        logging.getLogger("pdsandbox").warning(
            "the process that started the sandbox (%d) is gone: stopping", parent
        )
        os.kill(os.getpid(), signal.SIGTERM)

    watcher = threading.Thread(target=watch, name="pdsandbox-parent", daemon=True)
    watcher.start()
    return watcher


def main(argv: Sequence[str] | None = None) -> int:
    cli = argparse.ArgumentParser(prog="pdsandbox", description="Run the PagerDuty sandbox.")
    cli.add_argument("--port", type=int, default=DEFAULT_PORT)
    cli.add_argument(
        "--state-file",
        metavar="PATH",
        default=None,
        help="keep accounts, grants, tokens, integrations, incidents and webhook "
        "subscriptions in this file across restarts (default: $PDSANDBOX_STATE_FILE, "
        "else nothing is kept)",
    )
    cli.add_argument(
        "--parent",
        metavar="PID",
        type=int,
        default=None,
        help="stop once the process PID is no longer this one's parent (the program that "
        "started the sandbox passes its own PID, so that its sandbox never outlives it)",
    )
    args = cli.parse_args(argv)
    try:
        config = config_from_env(port=args.port)
    except SandboxConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    state_file = args.state_file or state_file_from_env()
    if args.parent is not None:
        if os.getppid() != args.parent:
            print(f"error: --parent {args.parent} is not this process's parent", file=sys.stderr)
            return 2
        stop_without(args.parent)
    try:
        run_sandbox(config, host="127.0.0.1", port=args.port, state_file=state_file)
    except StateFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
