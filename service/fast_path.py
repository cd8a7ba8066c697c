"""`POST /v1/decisions` without FastAPI's request machinery, for the common request.

FastAPI's and Starlette's routing, dependency solving and body handling cost as much CPU
per decision as the decision itself: py-spy on a worker at 200 decisions/s (Redis, reasons
off) counted 541 samples on the event loop against 571 in `decide()`. This pure ASGI
middleware, innermost of the app's own, answers a decision request whose JSON body
validates as `DecisionRequest` with the route's steps: `authorise` for the `decide` scope,
the running engine, and `answer_decision`, the route's own call (400 samples against 849
after it, on a slower hour of the same machine). Everything else goes on to FastAPI
untouched: other paths and methods, other content types, and a body that does not validate
(replayed, so that the answer is FastAPI's own 422). Domain errors (401, 403, 429, 503) get
the app's one error mapping; the route stays registered, and documented, as it was.
`tests/integration/test_fast_path.py` holds both paths to the same answers.
"""

from __future__ import annotations

import json

from fastapi import Request
from pydantic import ValidationError
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.auth import authorise
from service.error_handlers import domain_error
from service.errors import NBAError
from service.routes import answer_decision, get_runtime, router
from service.schemas import DecisionRequest
from service.vocabulary import Scope as KeyScope

PATH = "/v1/decisions"


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bool(value.split(b";", 1)[0].strip().lower() == b"application/json")
    return False


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body; None when the client went away before sending it."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A receive that gives `body` once, then what the connection sends (a disconnect)."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


class DecisionFastPath:
    """Answers valid decision requests directly, passes everything else to `app` (see the
    module)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.route: BaseRoute = next(
            route
            for route in router.routes
            if getattr(route, "path", None) == PATH and "POST" in getattr(route, "methods", ())
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] != PATH
            or not _is_json(scope)
        ):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            return
        receive = _replaying(body, receive)
        try:
            decision_request = DecisionRequest.model_validate(json.loads(body))
        except (ValueError, ValidationError):  # FastAPI answers it in the one error format
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route  # the access log and the latency histogram name the route
        request = Request(scope, receive)
        response: Response
        try:
            authorise(request, KeyScope.DECIDE)
            response = await answer_decision(await get_runtime(request), decision_request)
        except NBAError as exc:
            response = domain_error(request, exc)
        await response(scope, receive, send)
