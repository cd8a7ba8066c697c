"""`python -m tests.benchmarks.bare_app`: the transport alone, for the http section.

A raw ASGI app that reads the request body and answers `{}`, served like the service
(uvicorn, 2 workers, access log off, on `NBA_HOST`:`NBA_PORT`). Its latency under the same
load generator is what uvicorn, the loopback and the generator cost before any framework or
decision work: the part of the end-to-end figure that the in-process floor cannot contain.
"""

from __future__ import annotations

import os
from typing import Any

import uvicorn

ANSWER_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"2")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Read the whole request, answer 200 `{}` (lifespan events are acknowledged)."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": ANSWER_HEADERS})
    await send({"type": "http.response.body", "body": b"{}"})


if __name__ == "__main__":
    uvicorn.run(
        "tests.benchmarks.bare_app:app",
        host=os.environ.get("NBA_HOST", "127.0.0.1"),
        port=int(os.environ.get("NBA_PORT", "8000")),
        workers=2,
        access_log=False,
        log_level="warning",
    )
