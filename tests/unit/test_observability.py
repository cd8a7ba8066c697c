"""Request IDs survive a bug: the 500 answer and its log line carry them."""

from __future__ import annotations

import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.error_handlers import install_error_handlers
from service.observability import RequestContextMiddleware


def test_an_unhandled_error_keeps_the_request_id(caplog: pytest.LogCaptureFixture) -> None:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("bug")

    client = TestClient(app, raise_server_exceptions=False)
    with caplog.at_level(logging.INFO, logger="nba.access"):
        response = client.get("/boom", headers={"X-Request-ID": "req-42"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "req-42"
    assert response.json()["error"]["code"] == "internal_error"
    assert "bug" not in response.text  # no stack trace in the body
    assert any(r.getMessage() == "unhandled error" and r.exc_info for r in caplog.records)
    assert any(getattr(r, "status", None) == 500 for r in caplog.records)
    weird = client.request("BREW", "/boom")
    assert weird.status_code == 405
