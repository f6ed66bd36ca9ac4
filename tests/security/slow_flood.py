"""A flood of slow connections against a server on loopback, run in a process of its own so that
what it costs in CPU is not charged to the sender it is meant to delay.

    python -m tests.security.slow_flood --port P --key K [--connections 1000] [--seconds 12]
        [--reopen-after 1]

It holds `connections` connections open from many loopback addresses (127.0.x.y: all this
machine), `per-address` to an address, each dribbling a byte a second: a third are strangers'
Events API drop-ins (their key would be in the body), a third a tenant's native alerts with its
key (`--key`) in the header, a third heads that never end. Whatever the server closes is opened
again `--reopen-after` seconds later (an attacker holding its places, not a storm of new
connections: that is a rate of connections, which no deadline bounds). It prints `full` once
every connection is open, then, after `seconds`, one JSON line of what it saw, and exits: it
stops by itself, and only ever talks to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections import Counter


def _request(kind: int, key: str) -> bytes:
    lines = ["Host: 127.0.0.1", "Content-Type: application/json", "Content-Length: 9999"]
    if kind == 0:
        return "\r\n".join(["POST /v2/enqueue HTTP/1.1", *lines, "", ""]).encode()
    if kind == 1:
        auth = f"Authorization: Bearer {key}"
        return "\r\n".join(["POST /v1/alerts HTTP/1.1", auth, *lines, "", ""]).encode()
    return b"POST /v1/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\n"


class Flood:
    def __init__(
        self, port: int, key: str, connections: int, per_address: int, reopen_after: float
    ) -> None:
        self.port = port
        self.reopen_after = reopen_after
        self.key = key
        self.connections = connections
        self.per_address = per_address
        self.writers: dict[int, asyncio.StreamWriter] = {}
        self.opened = 0
        self.refused = 0
        self.answers: Counter[int] = Counter()
        # How many were open, once a second from when all first were.
        self.samples: list[int] = []
        self.full = asyncio.Event()
        self.stop = asyncio.Event()

    def address(self, slot: int) -> str:
        group = slot // self.per_address
        return f"127.0.{1 + group // 250}.{1 + group % 250}"

    async def hold(self, slot: int) -> None:
        """Keep one slow connection open in this slot until told to stop."""
        while not self.stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", self.port, local_addr=(self.address(slot), 0)
                )
            except OSError:
                self.refused += 1
                await asyncio.sleep(0.1)
                continue
            self.opened += 1
            try:
                writer.write(_request(slot % 3, self.key))
                self.writers[slot] = writer
                if len(self.writers) >= self.connections:
                    self.full.set()
                stopping = asyncio.ensure_future(self.stop.wait())
                answer = asyncio.ensure_future(reader.read(12))
                await asyncio.wait({stopping, answer}, return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                if answer.done() and not answer.cancelled() and answer.exception() is None:
                    first = answer.result()
                    if first.startswith(b"HTTP/1.1 "):
                        self.answers[int(first[9:12])] += 1
                else:
                    answer.cancel()
            except OSError:
                pass
            finally:
                self.writers.pop(slot, None)
                writer.close()
            if not self.stop.is_set():
                await asyncio.sleep(self.reopen_after)

    async def dribble(self) -> None:
        """A byte a second on every open connection: never idle, never done."""
        while not self.stop.is_set():
            if self.full.is_set():
                self.samples.append(len(self.writers))
            for slot, writer in list(self.writers.items()):
                # A connection the server just closed: its holder opens the next one.
                with contextlib.suppress(OSError, RuntimeError):
                    writer.write(b"x" if slot % 3 == 2 else b" ")
            await asyncio.sleep(1.0)


async def run(
    port: int, key: str, connections: int, per_address: int, seconds: float, reopen_after: float
) -> None:
    flood = Flood(port, key, connections, per_address, reopen_after)
    holders = [asyncio.create_task(flood.hold(slot)) for slot in range(connections)]
    dribbling = asyncio.create_task(flood.dribble())
    try:
        async with asyncio.timeout(60):
            await flood.full.wait()
        print("full", flush=True)
        await asyncio.sleep(seconds)
        still_open = len(flood.writers)
    finally:
        flood.stop.set()
        await asyncio.gather(*holders, dribbling)
    summary = {
        "connections": connections,
        "seconds": seconds,
        "opened": flood.opened,
        "refused": flood.refused,
        "open_at_end": still_open,
        "open_least": min(flood.samples, default=0),
        "open_mean": round(sum(flood.samples) / max(1, len(flood.samples))),
        "answers": dict(flood.answers),
    }
    print(json.dumps(summary), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--per-address", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--reopen-after", type=float, default=1.0)
    args = parser.parse_args()
    started = time.monotonic()
    asyncio.run(
        run(
            args.port,
            args.key,
            args.connections,
            args.per_address,
            args.seconds,
            args.reopen_after,
        )
    )
    print(json.dumps({"took": round(time.monotonic() - started, 1)}), flush=True)


if __name__ == "__main__":
    main()
