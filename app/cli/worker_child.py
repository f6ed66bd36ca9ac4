"""`pdconnect serve`'s dispatcher: a `pdconnect worker` in a child process beside the web app.

Why not in the web process: there, every step of a send (its claim, its spend, its record)
waits behind whatever else that turn of the event loop runs, the ingest batches and their
answers first, and the two share one core. Under 500 alerts a second (`bench.time_to_page
--rate 500`) a page took 50-100 ms (p50) and background alerts fell behind by seconds; with the
dispatcher in a process of its own, as deploy/ runs it, 22-33 ms and none behind.

The child is the same command deploy/ runs, so what `serve` does is what production does.
`serve` opens its port once the child's dispatcher listens for new events (a pipe between them
says so), so that an alert accepted by a server that answers is on its way at once. It is
started again when it dies (with a growing pause while it keeps dying), stopped with SIGTERM
after the web app has drained (its sends in flight then finish, bounded by the lease), and it
stops by itself when `serve` is gone without stopping it (SIGKILL, the OOM killer).
"""

from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping

log = logging.getLogger("pdconnect")

# The pause before each restart while the child keeps dying; back to the first once it has run
# a minute.
RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)
STEADY_SECONDS = 60.0
# SIGTERM lets sends in flight finish, bounded by the dispatcher's 30 s lease.
STOP_TIMEOUT = 35.0


# How long `serve` waits for its dispatcher to listen before it opens its port anyway (the
# dispatcher then claims what came meanwhile as soon as it listens).
LISTENING_TIMEOUT = 30.0


def worker_argv(parent: int, ready_fd: int | None) -> list[str]:
    argv = [sys.executable, "-m", "app.cli", "worker", "--parent", str(parent)]
    return argv if ready_fd is None else [*argv, "--ready-fd", str(ready_fd)]


# Not handed to the child: a metrics port is for a worker run on its own (the web app's
# /metrics counts the child's deliveries), and whether a dispatcher runs is `serve`'s to say.
NOT_HANDED_DOWN = frozenset({"PDCONNECT_METRICS_PORT", "PDCONNECT_RUN_DISPATCHER"})


def worker_env(env: Mapping[str, str]) -> dict[str, str]:
    """The settings `serve` resolved, less NOT_HANDED_DOWN."""
    return {k: v for k, v in env.items() if k not in NOT_HANDED_DOWN}


class WorkerChild:
    """One `pdconnect worker` child, kept running until `stop`."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = worker_env(env)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._keeper: threading.Thread | None = None
        # The read end of the first child's pipe, until `wait_listening` has read it.
        self._ready: int | None = None

    @property
    def pid(self) -> int | None:
        with self._lock:
            return None if self._process is None else self._process.pid

    def start(self) -> None:
        """Starts the child; `wait_listening` then waits until its dispatcher listens."""
        read_end, write_end = os.pipe()
        self._ready = read_end
        try:
            with self._lock:
                self._process = self._spawn(write_end)
        finally:
            os.close(write_end)
        self._keeper = threading.Thread(target=self._keep, name="dispatcher child", daemon=True)
        self._keeper.start()

    def wait_listening(self, timeout: float = LISTENING_TIMEOUT) -> bool:
        """Until the first child's dispatcher listens for new events (True), the child exits
        (its end of the pipe closes), or `timeout`."""
        if self._ready is None:
            return False
        try:
            readable, _, _ = select.select([self._ready], [], [], timeout)
            said = bool(readable) and os.read(self._ready, 64).startswith(b"listening")
        finally:
            os.close(self._ready)
            self._ready = None
        if not said:
            log.warning("the dispatcher's process is not listening yet; serving without waiting")
        return said

    def _spawn(self, ready_fd: int | None = None) -> subprocess.Popen[bytes]:
        fds = () if ready_fd is None else (ready_fd,)
        return subprocess.Popen(  # noqa: S603 - our own interpreter and module
            worker_argv(os.getpid(), ready_fd),
            env=self._env,
            stdin=subprocess.DEVNULL,
            pass_fds=fds,
        )

    def _keep(self) -> None:
        failures = 0
        while True:
            with self._lock:
                process = self._process
            assert process is not None
            started = time.monotonic()
            status = process.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - started >= STEADY_SECONDS:
                failures = 0
            delay = RESTART_DELAYS[min(failures, len(RESTART_DELAYS) - 1)]
            failures += 1
            log.warning(
                "the dispatcher's process exited (status %s); starting it again in %.0f s",
                status,
                delay,
            )
            if self._stopping.wait(delay):
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                self._process = self._spawn()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        with self._lock:
            self._stopping.set()
            process = self._process
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("the dispatcher's process did not stop in %.0f s: killed", timeout)
                process.kill()
                process.wait()
        if self._keeper is not None:
            self._keeper.join()
