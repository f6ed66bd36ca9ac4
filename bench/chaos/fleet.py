"""The pdconnect processes of one scenario, run as a supervisor would run them.

Each is a real `pdconnect serve` (web, with or without its in-process dispatcher) or
`pdconnect worker` started from the installed console script. `kill()` is SIGKILL: no
shutdown code runs, in-flight requests and sends are cut off. `start()` runs the same command
again (a web process on the same port) and waits until it serves (web) or dispatches
(worker). Everything here awaits instead of blocking, so the load keeps running meanwhile.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from asyncio.subprocess import Process
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

from bench.chaos.world import PDCONNECT, READY_TIMEOUT, World
from bench.stack import LOOPBACK, STOP_TIMEOUT, SetupError, free_port, tail

WORKER_READY_LINE = b"worker started"


@dataclass
class PdProcess:
    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    port: int | None = None  # web processes only
    proc: Process | None = None
    pids: list[int] = field(default_factory=list)  # one per start

    @property
    def url(self) -> str:
        assert self.port is not None
        return f"http://{LOOPBACK}:{self.port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None


@dataclass
class Fleet:
    world: World
    http: httpx2.AsyncClient
    processes: list[PdProcess] = field(default_factory=list)

    @property
    def webs(self) -> list[PdProcess]:
        return [p for p in self.processes if p.port is not None]

    def dispatchers(self) -> int:
        """How many processes run a dispatcher (each holds one LISTEN connection)."""
        return sum(p.env.get("PDCONNECT_RUN_DISPATCHER") != "0" for p in self.processes)

    async def web(self, name: str, *, dispatcher: bool = True) -> PdProcess:
        port = free_port()
        env = dict(self.world.env)
        if not dispatcher:
            env["PDCONNECT_RUN_DISPATCHER"] = "0"
        args = ["serve", "--host", LOOPBACK, "--port", str(port)]
        return await self._add(PdProcess(name, args, env, self._log(name), port=port))

    async def worker(self, name: str) -> PdProcess:
        return await self._add(PdProcess(name, ["worker"], dict(self.world.env), self._log(name)))

    def _log(self, name: str) -> Path:
        return self.world.root / f"{name}.log"

    async def _add(self, process: PdProcess) -> PdProcess:
        self.processes.append(process)
        await self.start(process)
        return process

    async def start(self, process: PdProcess) -> None:
        offset = process.log.stat().st_size if process.log.exists() else 0
        with process.log.open("ab") as out:
            process.proc = await asyncio.create_subprocess_exec(
                PDCONNECT,
                *process.args,
                env=process.env,
                cwd=self.world.root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        process.pids.append(process.proc.pid)
        await self._until_ready(process, offset)

    async def _until_ready(self, process: PdProcess, log_offset: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        while loop.time() < deadline:
            if not process.alive():
                raise SetupError(f"{process.name} exited during start-up\n{tail(process.log)}")
            if await self._ready(process, log_offset):
                return
            await asyncio.sleep(0.1)
        raise SetupError(f"{process.name} was not ready in {READY_TIMEOUT:.0f} s")

    async def _ready(self, process: PdProcess, log_offset: int) -> bool:
        if process.port is None:
            with process.log.open("rb") as log:
                log.seek(log_offset)
                return WORKER_READY_LINE in log.read()
        try:
            response = await self.http.get(f"{process.url}/readyz", timeout=2.0)
        except httpx2.TransportError:
            return False
        return response.status_code == 200

    async def kill(self, process: PdProcess) -> None:
        """SIGKILL, as the kernel's OOM killer or a lost node would."""
        assert process.proc is not None
        process.proc.send_signal(signal.SIGKILL)
        await process.proc.wait()

    async def stop(self) -> None:
        """SIGTERM lets dispatchers finish their sends; SIGKILL if that takes too long."""
        running = [p.proc for p in self.processes if p.proc is not None]
        for proc in running:
            if proc.returncode is None:
                proc.terminate()
        for proc in running:
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
            except TimeoutError:
                proc.kill()
                await proc.wait()


@asynccontextmanager
async def running_fleet(world: World) -> AsyncIterator[Fleet]:
    fleet = Fleet(world=world, http=world.http)
    try:
        yield fleet
    finally:
        await fleet.stop()
