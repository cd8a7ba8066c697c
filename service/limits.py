"""Request limits as pure ASGI middlewares: the body size, and the requests in progress.

A body announced larger than the limit (`Content-Length`) is refused with 413 before a byte
of it is read. A body without `Content-Length` (chunked) is counted while it is read; the
read that crosses the limit raises `BodyTooLarge`, which the app's error handlers answer in
the one error format. Either way the app never holds more than the limit in memory.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.error_handlers import error_response


class BodyTooLarge(HTTPException):
    """The request body is larger than the limit (answered 413 `payload_too_large`)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodySizeLimitMiddleware:
    """Refuse request bodies larger than `max_bytes` with 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        announced = _content_length(scope)
        if announced is not None and announced > self.max_bytes:
            too_large = BodyTooLarge(self.max_bytes)
            await error_response(413, "payload_too_large", too_large.detail)(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge as exc:
            # Read outside the app's error handlers (none of ours does): answer here.
            if started:
                raise
            await error_response(413, "payload_too_large", exc.detail)(scope, receive, send)


class InFlightLimitMiddleware:
    """Shed load: while `max_in_flight` requests are in progress in this worker, answer
    further ones at once with 503 `overloaded` and `Retry-After: 1`.

    Without it, a worker that falls behind (a burst, a noisy neighbour on the machine)
    queues requests without bound: each waits longer than its client does, the worker
    spends itself on answers nobody reads, and memory grows with the queue. Liveness and
    metrics are never shed. 0 turns the limit off.
    """

    EXEMPT = frozenset({"/health/live", "/metrics"})

    def __init__(self, app: ASGIApp, max_in_flight: int) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.in_flight = 0  # one event loop per worker: no lock needed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.max_in_flight or scope["path"] in self.EXEMPT:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            response = error_response(
                503,
                "overloaded",
                f"{self.max_in_flight} requests are in progress in this worker; retry shortly",
            )
            response.headers["Retry-After"] = "1"
            await response(scope, receive, send)
            return
        self.in_flight += 1
        try:
            # Let the requests already read reach this count before this one goes on: a
            # decision on the event loop (`service.placement`) never yields, so without this
            # the count would never pass one and nothing would be shed.
            await asyncio.sleep(0)
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


_ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}


def document_limits(app: FastAPI) -> None:
    """Document the limits in the OpenAPI schema: 413 on every operation, 429 (with
    `Retry-After`) on every operation that checks an API key (those that document 401)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                responses.setdefault(
                    "413",
                    {
                        "description": "Request body too large (`payload_too_large`)",
                        "content": _ERROR_BODY,
                    },
                )
                if "401" in responses:
                    responses.setdefault(
                        "429",
                        {
                            "description": "The key's rate limit is exceeded (`rate_limited`)",
                            "headers": {
                                "Retry-After": {
                                    "description": "Seconds to wait before retrying",
                                    "required": True,
                                    "schema": {"type": "integer", "minimum": 1},
                                }
                            },
                            "content": _ERROR_BODY,
                        },
                    )
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
