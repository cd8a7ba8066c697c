"""An open-loop HTTP load generator: requests leave on a fixed schedule, whatever the
server does, and latency counts from the scheduled time (no coordinated omission)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
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


Request = tuple[str, str, bytes]  # (kind, path, JSON body): ("feedback", "/v1/feedback", ...)


@dataclass(frozen=True, slots=True)
class Sample:
    """One request of a mixed run: when it was due, what it was and how it ended."""

    due_s: float  # scheduled time, seconds from the start of the run
    kind: str
    status: int  # HTTP status; 0 for a connection error or timeout
    latency_ms: float  # from the scheduled time to the whole answer; nan when status is 0


IDLE_SECONDS = 2.0  # pooled connections idle longer are closed (uvicorn drops them after 5 s)


class _Connections:
    """Keep-alive connections, warmest first; ones idle too long are closed, not reused."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[float, asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def take(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        now = asyncio.get_running_loop().time()
        while self.idle:
            used_at, reader, writer = self.idle.pop()
            if now - used_at < IDLE_SECONDS and not reader.at_eof():
                return reader, writer
            writer.close()
        return await asyncio.open_connection(self.host, self.port)

    def give(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.idle.append((asyncio.get_running_loop().time(), reader, writer))

    def close(self) -> None:
        for _, _, writer in self.idle:
            writer.close()
        self.idle.clear()


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return status, await reader.readexactly(length)


async def _run_mixed(
    host: str,
    port: int,
    next_request: Callable[[int], Request],
    on_answer: Callable[[str, int, bytes], None] | None,
    rate: float,
    duration: float,
    headers: dict[str, str],
    timeout: float,
) -> list[Sample]:
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    connections = _Connections(host, port)
    samples: list[Sample] = []
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    pending: set[asyncio.Task[None]] = set()

    async def one(i: int, due: float) -> None:
        kind, path, body = next_request(i)
        request = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"{extra}Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await connections.take()
                writer.write(request)
                await writer.drain()
                status, answer = await _answer(reader)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            if writer is not None:
                writer.close()
            samples.append(Sample(due - start, kind, 0, float("nan")))
            return
        connections.give(reader, writer)
        samples.append(Sample(due - start, kind, status, (loop.time() - due) * 1000))
        if on_answer is not None:
            on_answer(kind, status, answer)

    for i in range(int(rate * duration)):
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - loop.time()))
        task = asyncio.create_task(one(i, due))  # sent on schedule, whatever came back
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*list(pending))
    connections.close()
    return samples


def open_loop_mixed(
    host: str,
    port: int,
    next_request: Callable[[int], Request],
    rate: float,
    duration: float,
    on_answer: Callable[[str, int, bytes], None] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> list[Sample]:
    """Open loop like `open_loop`, for long mixed runs: request `i` is made by
    `next_request(i)` when it is due (so it may use earlier answers, which `on_answer`
    receives), requests are started one by one rather than all scheduled up front, and
    every request's due time, kind, status and latency is kept."""
    return asyncio.run(
        _run_mixed(host, port, next_request, on_answer, rate, duration, headers or {}, timeout)
    )
