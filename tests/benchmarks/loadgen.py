"""An open-loop HTTP load generator: requests leave on a fixed schedule, whatever the
server does, and latency counts from the scheduled time (no coordinated omission)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    """What a run sent and got back."""

    rate: float
    duration: float
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    failures: int = 0  # connection errors and timeouts

    @property
    def sent(self) -> int:
        return sum(self.statuses.values()) + self.failures

    @property
    def errors(self) -> int:
        return self.failures + sum(n for s, n in self.statuses.items() if s >= 400)


async def _exchange(
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]],
    host: str,
    port: int,
    request: bytes,
) -> int:
    try:
        reader, writer = pool.get_nowait()
    except asyncio.QueueEmpty:
        reader, writer = await asyncio.open_connection(host, port)
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    pool.put_nowait((reader, writer))
    return status


async def _run(
    host: str,
    port: int,
    path: str,
    bodies: Sequence[bytes],
    headers: dict[str, str],
    rate: float,
    duration: float,
    timeout: float,
) -> LoadResult:
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    requests = [
        (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"{extra}Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
        for body in bodies
    ]
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    result = LoadResult(rate, duration)
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    total = int(rate * duration)

    async def one(i: int) -> None:
        scheduled = start + i / rate
        await asyncio.sleep(max(0.0, scheduled - loop.time()))
        try:
            status = await asyncio.wait_for(
                _exchange(pool, host, port, requests[i % len(requests)]), timeout
            )
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            result.failures += 1
            return
        result.latencies_ms.append((loop.time() - scheduled) * 1000)
        result.statuses[status] = result.statuses.get(status, 0) + 1

    began = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(total)))
    result.duration = time.perf_counter() - began
    while not pool.empty():
        _, writer = pool.get_nowait()
        writer.close()
    return result


def open_loop(
    host: str,
    port: int,
    path: str,
    bodies: Sequence[bytes],
    rate: float,
    duration: float,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> LoadResult:
    """Send `rate` requests a second for `duration` seconds, cycling through `bodies`."""
    return asyncio.run(_run(host, port, path, bodies, headers or {}, rate, duration, timeout))
