"""Request limits: the body-size middleware and per-key token buckets (injected clock)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from service.app import create_app
from service.auth import ApiKeys, issue_key, scoped
from service.error_handlers import install_error_handlers
from service.errors import ConfigurationError
from service.limits import BodySizeLimitMiddleware, InFlightLimitMiddleware
from service.observability import RequestContextMiddleware
from service.ratelimit import RateLimiter
from service.schemas import ErrorResponse
from service.settings import ServiceSettings
from service.vocabulary import Scope
from training.cli import main as nba

LIMIT = 256


class Echo(BaseModel):
    text: str


def _limited_app() -> FastAPI:
    """The middleware order of `service.app.create_app`, around one JSON route."""
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=LIMIT)
    app.add_middleware(RequestContextMiddleware)

    @app.post("/echo")
    def echo(body: Echo) -> Echo:
        return body

    return app


def _assert_413(response: Any) -> None:
    assert response.status_code == 413
    error = ErrorResponse.model_validate(response.json()).error
    assert error.code == "payload_too_large" and str(LIMIT) in error.message
    assert response.headers["x-request-id"]


def test_bodies_up_to_the_limit_pass_through_unchanged() -> None:
    client = TestClient(_limited_app())
    text = "é" * ((LIMIT - 20) // 2)
    response = client.post("/echo", json={"text": text})
    assert response.status_code == 200 and response.json() == {"text": text}
    chunked = client.post(
        "/echo",
        content=iter([b'{"text": ', b'"short"}']),
        headers={"content-type": "application/json"},
    )
    assert chunked.status_code == 200 and chunked.json() == {"text": "short"}


def test_an_announced_large_body_is_refused_in_the_error_format_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = TestClient(_limited_app())
    with caplog.at_level(logging.INFO, logger="nba.access"):
        response = client.post(
            "/echo", json={"text": "x" * LIMIT}, headers={"X-Request-ID": "big-1"}
        )
    _assert_413(response)
    assert response.headers["x-request-id"] == "big-1"
    access = [r for r in caplog.records if r.name == "nba.access"]
    assert [getattr(r, "status", None) for r in access] == [413]


def test_a_chunked_body_is_counted_and_refused() -> None:
    client = TestClient(_limited_app())
    body = b'{"text": "' + b"x" * LIMIT + b'"}'
    response = client.post(  # no Content-Length
        "/echo", content=iter([body]), headers={"content-type": "application/json"}
    )
    _assert_413(response)


def _call(app: Any, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> tuple[int, int]:
    """Run one request through `app` at the ASGI level; return (status, chunks read)."""
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        more = pulled < len(chunks)
        return {"type": "http.request", "body": chunks[pulled - 1], "more_body": more}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], pulled


async def _read_everything(scope: Any, receive: Any, send: Any) -> None:
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def test_the_limit_stops_reading_early() -> None:
    limited = BodySizeLimitMiddleware(_read_everything, max_bytes=LIMIT)
    announced = [(b"content-length", str(LIMIT + 1).encode())]
    assert _call(limited, announced, [b"x" * (LIMIT + 1)]) == (413, 0), "nothing read"
    chunks = [b"x" * 100] * 10
    assert _call(limited, [], chunks) == (413, 3), "stops at the chunk that crosses the limit"
    assert _call(limited, [], [b"x" * 100, b"x" * 100]) == (204, 2)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_burst_refill_and_retry_after() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2.0, burst=3, clock=clock)
    assert [limiter.acquire("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.acquire("a") == 1, "empty: one token comes back in 0.5 s, said as 1 s"
    assert limiter.acquire("b") == 0, "each key has its own bucket"
    clock.now += 0.5
    assert limiter.acquire("a") == 0
    assert limiter.acquire("a") == 1
    clock.now += 60
    assert [limiter.acquire("a") for _ in range(4)] == [0, 0, 0, 1], "refills only up to burst"
    clock.now -= 30  # a clock that steps back never adds tokens
    assert limiter.acquire("a") == 1


def test_retry_after_is_whole_seconds_and_per_key_rates_override() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=0.0, burst=1, clock=clock)
    assert all(limiter.acquire("free") == 0 for _ in range(50)), "rate 0: no limit"
    assert limiter.acquire("slow", rate=0.1) == 0
    assert limiter.acquire("slow", rate=0.1) == 10
    clock.now += 9.5
    assert limiter.acquire("slow", rate=0.1) == 1
    clock.now += 0.5
    assert limiter.acquire("slow", rate=0.1) == 0


def _keyed_client(path: Path, limiter: RateLimiter) -> TestClient:
    app = FastAPI()
    app.state.api_keys = ApiKeys.load(path)
    app.state.rate_limiter = limiter
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware)

    @app.get("/decide", dependencies=scoped(Scope.DECIDE))
    def decide() -> dict[str, str]:
        return {"ok": "yes"}

    return TestClient(app)


def test_rate_limit_per_key_answers_429_with_retry_after(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "keys.yaml"
    web = issue_key(path, "web", [Scope.DECIDE])
    batch = issue_key(path, "batch", [Scope.DECIDE], rate_per_second=0.25)
    clock = Clock()
    client = _keyed_client(path, RateLimiter(rate=1.0, burst=2, clock=clock))
    web_key, batch_key = {"X-API-Key": web}, {"X-API-Key": batch}
    assert [client.get("/decide", headers=web_key).status_code for _ in range(2)] == [200, 200]
    with caplog.at_level(logging.INFO, logger="nba.access"):
        limited = client.get("/decide", headers=web_key)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
    error = ErrorResponse.model_validate(limited.json()).error
    assert error.code == "rate_limited" and "web" in error.message
    access = [r for r in caplog.records if r.name == "nba.access"]
    assert [(getattr(r, "status", 0), getattr(r, "caller", "")) for r in access] == [(429, "web")]
    assert client.get("/decide", headers=batch_key).status_code == 200, "own bucket"
    assert client.get("/decide", headers=batch_key).status_code == 200
    assert client.get("/decide", headers=batch_key).headers["retry-after"] == "4"
    clock.now += 1
    assert client.get("/decide", headers=web_key).status_code == 200
    assert client.get("/decide", headers=batch_key).status_code == 429, "its own, lower rate"
    unknown = client.get("/decide", headers={"X-API-Key": "nba_unknown"})
    assert unknown.status_code == 401, "an unknown key is refused, never counted"


def test_a_keys_own_rate_is_stored_validated_and_issued_by_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys.yaml"
    monkeypatch.setenv("NBA_API_KEYS_FILE", str(path))
    assert nba(["issue-key", "--name", "batch", "--scopes", "decide", "--rate", "2.5"]) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert nba(["issue-key", "--name", "web", "--scopes", "decide"]) == 0
    entries = yaml.safe_load(path.read_text())["keys"]
    assert entries[0]["rate_per_second"] == 2.5 and "rate_per_second" not in entries[1]
    found = ApiKeys.load(path).authenticate(key)
    assert found is not None and found.rate_per_second == 2.5
    assert nba(["issue-key", "--name", "zero", "--scopes", "decide", "--rate", "0"]) == 1
    with pytest.raises(ConfigurationError, match="above 0"):
        issue_key(path, "negative", [Scope.DECIDE], rate_per_second=-1)
    entries.append({**entries[1], "name": "broken", "rate_per_second": "fast"})
    path.write_text(yaml.safe_dump({"keys": entries}))
    with pytest.raises(ConfigurationError, match="rate_per_second"):
        ApiKeys.load(path)


def test_the_openapi_document_names_413_everywhere_and_429_where_a_key_is_checked() -> None:
    paths = create_app(ServiceSettings(api_keys_file=None)).openapi()["paths"]
    operations = [op for methods in paths.values() for op in methods.values()]
    assert all("413" in op["responses"] for op in operations)
    keyed = [op for op in operations if "401" in op["responses"]]
    assert keyed and all("429" in op["responses"] for op in keyed)
    assert all("429" not in op["responses"] for op in operations if op not in keyed)
    assert keyed[0]["responses"]["429"]["headers"]["Retry-After"]["required"] is True


def test_requests_above_the_in_flight_limit_are_shed_at_once() -> None:
    async def scenario() -> list[Any]:
        entered, release = asyncio.Event(), asyncio.Event()
        app = FastAPI()
        install_error_handlers(app)
        app.add_middleware(InFlightLimitMiddleware, max_in_flight=1)

        @app.get("/slow")
        async def slow() -> dict[str, bool]:
            entered.set()
            await release.wait()
            return {"ok": True}

        @app.get("/health/live")
        async def live() -> dict[str, str]:
            return {"status": "ok"}

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            first = asyncio.create_task(client.get("/slow"))
            await entered.wait()
            shed = await client.get("/slow")
            live_meanwhile = await client.get("/health/live")
            release.set()
            return [await first, shed, live_meanwhile, await client.get("/slow")]

    first, shed, live, after = asyncio.run(scenario())
    assert first.status_code == 200
    assert shed.status_code == 503 and shed.headers["Retry-After"] == "1"
    assert ErrorResponse.model_validate(shed.json()).error.code == "overloaded"
    assert live.status_code == 200  # liveness is never shed
    assert after.status_code == 200  # the slot is free again


def test_requests_queued_behind_a_decision_that_never_yields_are_shed() -> None:
    """A decision on the event loop (`service.placement`) blocks it without yielding: the
    requests read meanwhile must still count as in flight, and those past the limit be shed."""

    async def scenario() -> list[int]:
        app = FastAPI()
        install_error_handlers(app)
        app.add_middleware(InFlightLimitMiddleware, max_in_flight=4)

        @app.get("/blocking")
        async def blocking() -> dict[str, bool]:
            time.sleep(0.01)  # synchronous, as a decision on the loop
            return {"ok": True}

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            answers = await asyncio.gather(*(client.get("/blocking") for _ in range(12)))
        return [answer.status_code for answer in answers]

    statuses = asyncio.run(scenario())
    assert statuses.count(200) == 4
    assert statuses.count(503) == 8
