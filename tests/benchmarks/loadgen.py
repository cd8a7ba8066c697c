"""An open-loop HTTP load generator: requests leave on a fixed schedule, whatever the
server does, and latency counts from the scheduled time (no coordinated omission)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Request = tuple[str, str, bytes]  # (kind, path, JSON body): ("feedback", "/v1/feedback", ...)


@dataclass(frozen=True, slots=True)
class Sample:
    """One request of a mixed run: when it was due, what it was and how it ended."""

    due_s: float  # scheduled time, seconds from the start of the run
    kind: str
    status: int  # HTTP status; 0 for a connection error or timeout
    latency_ms: float  # from the scheduled time to the whole answer; nan when status is 0


CONNECTIONS_READY = 8  # opened before the clock starts
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

    async def open(self, count: int) -> None:
        """Open `count` connections ahead, so that the first requests find them ready."""
        for _ in range(count):
            self.give(*await asyncio.open_connection(self.host, self.port))

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
    await connections.open(CONNECTIONS_READY)
    samples: list[Sample] = []
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.01
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


def open_loop(
    host: str,
    port: int,
    path: str,
    bodies: Sequence[bytes],
    rate: float,
    duration: float,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> list[Sample]:
    """Send `rate` requests a second for `duration` seconds to `path`, cycling through
    `bodies`; every request's due time, status and latency."""

    def next_request(i: int) -> Request:
        return ("request", path, bodies[i % len(bodies)])

    return open_loop_mixed(host, port, next_request, rate, duration, None, headers, timeout)


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
    """Send `rate` requests a second for `duration` seconds: request `i` is made by
    `next_request(i)` when it is due (so it may use earlier answers, which `on_answer`
    receives) and leaves on schedule whatever came back; every request's due time, kind,
    status and latency (from the due time) is kept. Connections are kept alive and opened
    ahead, so that setting up the generator is not counted as the server's latency."""
    # What the calling process loaded (the suite imports Feast, MLflow and pandas) stays out
    # of the generator's full garbage collections, which would otherwise hold the event
    # loop for ~0.2 s and count as the server's latency.
    gc.collect()
    gc.freeze()
    return asyncio.run(
        _run_mixed(host, port, next_request, on_answer, rate, duration, headers or {}, timeout)
    )
