"""Bad input through the real app in-process: every error in the one format, odd customer
IDs, request limits, and logs without customer IDs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.app import create_app
from service.schemas import ErrorResponse
from service.vocabulary import Touchpoint
from tests.conftest import Stack
from tests.integration.conftest import CustomerPicker
from tests.integration.inprocess import Keys, app_settings, every_log_at_debug

pytestmark = pytest.mark.integration

BURST = 3
MAX_BODY = 16_384


@pytest.fixture(scope="module")
def served(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, Keys, FastAPI]]:
    settings, keys = app_settings(
        stack, tmp_path_factory.mktemp("bad_input"), rate_limit_burst=BURST
    )
    assert settings.max_body_bytes == MAX_BODY
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers.update(keys.headers)
        yield client, keys, app


@pytest.fixture(scope="module")
def client(served: tuple[TestClient, Keys, FastAPI]) -> TestClient:
    return served[0]


def error_of(response: Any, status: int, code: str) -> str:
    """Assert the one error format, with a request ID; return the message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"], "the request-ID middleware answered too"
    error = ErrorResponse.model_validate(response.json()).error
    assert error.code == code, error
    return error.message


def test_every_error_answers_in_the_one_format(
    served: tuple[TestClient, Keys, FastAPI],
) -> None:
    client, keys, _ = served
    decision = {"customer_id": "C0000001", "touchpoint": "web"}
    error_of(client.get("/v1/nothing-here"), 404, "not_found")
    wrong_method = client.get("/v1/decisions")
    error_of(wrong_method, 405, "method_not_allowed")
    assert wrong_method.headers["allow"] == "POST"
    json_type = {"content-type": "application/json"}
    error_of(
        client.post("/v1/decisions", content=b"{not json", headers=json_type),
        422,
        "invalid_request",
    )
    error_of(
        client.post("/v1/decisions", content=b"[1, 2]", headers=json_type), 422, "invalid_request"
    )
    not_utf8 = b'{"customer_id": "\xc3\x28", "touchpoint": "web"}'
    error_of(
        client.post("/v1/decisions", content=not_utf8, headers=json_type), 422, "invalid_request"
    )
    as_text = client.post(
        "/v1/decisions",
        content=b'{"customer_id": "C0000001", "touchpoint": "web"}',
        headers={"content-type": "text/plain"},
    )
    error_of(as_text, 422, "invalid_request")
    error_of(client.post("/v1/decisions", data=decision), 422, "invalid_request")  # a form
    error_of(client.post("/v1/decisions", json=None), 422, "invalid_request")  # no body
    big = {**decision, "customer_id": "x" * MAX_BODY}
    assert str(MAX_BODY) in error_of(
        client.post("/v1/decisions", json=big), 413, "payload_too_large"
    )
    chunked = client.post(
        "/v1/decisions", content=iter([b'{"customer_id": "', b"x" * MAX_BODY]), headers=json_type
    )
    error_of(chunked, 413, "payload_too_large")
    no_key = {"X-API-Key": ""}
    error_of(client.post("/v1/decisions", json=decision, headers=no_key), 401, "api_key_missing")
    wrong_key = {"X-API-Key": "nba_" + "x" * 43}
    error_of(client.post("/v1/decisions", json=decision, headers=wrong_key), 401, "api_key_invalid")
    throttled = {"X-API-Key": keys.throttled}
    feedback = {"decision_id": str(uuid.uuid4()), "action_id": "no_action", "outcome": "click"}
    error_of(client.post("/v1/feedback", json=feedback, headers=throttled), 403, "scope_missing")
    for _ in range(BURST - 1):
        assert client.post("/v1/decisions", json=decision, headers=throttled).status_code == 200
    limited = client.post("/v1/decisions", json=decision, headers=throttled)
    assert "throttled" in error_of(limited, 429, "rate_limited")
    assert 1 <= int(limited.headers["retry-after"]) <= 100
    assert client.post("/v1/decisions", json=decision).status_code == 200, "other keys go on"
    error_of(client.post("/v1/feedback", json=feedback), 404, "decision_not_found")


ACCEPTED_IDS = [
    "Zoë-客户-🙂",
    "x" * 128,
    "🙂" * 128,
    "x'; DROP TABLE decisions;--",
    "' OR '1'='1",
    "../../etc/passwd",
    "${jndi:ldap://x}",
    "<script>alert(1)</script>",
    "a/b?c=d#e&f",
    "%00%0a",
    "\\",
    " ",
    "\u202eevil",
    "null",
]
REFUSED_IDS = ["x" * 129, "🙂" * 129, "", "bad\x00id", "tab\tid", "line\nbreak", "del\x7f"]


def test_odd_customer_ids_are_answered_or_refused_never_a_server_error(
    served: tuple[TestClient, Keys, FastAPI], picker: CustomerPicker
) -> None:
    client, _, app = served
    consent = {"marketing": ["web"], "profiling": True}
    for customer_id in ACCEPTED_IDS:
        response = client.post(
            "/v1/decisions", json={"customer_id": customer_id, "touchpoint": "web", "explain": True}
        )
        assert response.status_code == 200, (customer_id, response.text)
        body = response.json()
        assert body["customer_id"] == customer_id and body["personalised"] is False
        if "%" not in customer_id:  # Starlette's TestClient decodes a path twice
            path = f"/admin/customers/{quote(customer_id, safe='')}/consent"
            updated = client.put(path, json=consent)
            if "/" in customer_id:  # a path segment cannot hold '/', even encoded
                error_of(updated, 404, "not_found")
            else:
                assert updated.status_code == 200, (customer_id, updated.text)
                assert updated.json()["customer_id"] == customer_id
        again = client.post("/v1/decisions", json={"customer_id": customer_id, "touchpoint": "web"})
        assert again.json()["personalised"] is False, "consent does not make an ID known"
    for customer_id in REFUSED_IDS:
        refused = client.post(
            "/v1/decisions", json={"customer_id": customer_id, "touchpoint": "web"}
        )
        assert "customer_id" in error_of(refused, 422, "invalid_request")
        if customer_id:
            path = f"/admin/customers/{quote(customer_id, safe='')}/consent"
            error_of(client.put(path, json=consent), 422, "invalid_request")

    # The decision log still works, and holds the odd IDs verbatim.
    known = picker.pick("consent_profiling == 1")
    decision = client.post("/v1/decisions", json={"customer_id": known, "touchpoint": "app"})
    assert decision.status_code == 200 and decision.json()["personalised"] is True
    feedback = client.post(
        "/v1/feedback",
        json={
            "decision_id": decision.json()["decision_id"],
            "action_id": decision.json()["action"]["action_id"],
            "outcome": "click",
        },
    )
    assert feedback.status_code == 202 and feedback.json()["status"] == "recorded"
    logged = set(app.state.runtime.decision_log.decisions_frame()["customer_id"])
    assert set(ACCEPTED_IDS) | {known} <= logged


def test_logs_carry_no_customer_ids(
    served: tuple[TestClient, Keys, FastAPI], picker: CustomerPicker, customers: pd.DataFrame
) -> None:
    client, _, _ = served
    known = picker.pick("consent_profiling == 1 and consent_marketing_web == 1")
    row = customers.loc[known]
    unknown, invalid = f"LEAK-ünknown-{uuid.uuid4().hex}", f"LEAK-invalid-{uuid.uuid4().hex}"
    consent = {
        "marketing": [t.value for t in Touchpoint if row[f"consent_marketing_{t.value}"] == 1],
        "profiling": True,
    }  # the customer's own consent, written again
    with every_log_at_debug() as lines:
        for customer_id in (known, unknown):
            decided = client.post(
                "/v1/decisions",
                json={"customer_id": customer_id, "touchpoint": "web", "explain": True},
            )
            assert decided.status_code == 200
            feedback = {
                "decision_id": decided.json()["decision_id"],
                "action_id": decided.json()["action"]["action_id"],
                "outcome": "accept",
            }
            assert client.post("/v1/feedback", json=feedback).status_code == 202
        updated = client.put(f"/admin/customers/{known}/consent", json=consent)
        assert updated.status_code == 200
        bad = {"customer_id": invalid, "touchpoint": "fax", "extra": invalid}
        assert client.post("/v1/decisions", json=bad).status_code == 422
        assert client.put(f"/admin/customers/{invalid}/consent", json={}).status_code == 422
        unknown_decision = {**feedback, "decision_id": str(uuid.uuid4())}
        assert client.post("/v1/feedback", json=unknown_decision).status_code == 404
    assert len(lines) >= 7, "every request wrote at least its access-log line"
    for customer_id in (known, unknown, invalid):
        leaks = [line for line in lines if customer_id in line]
        assert not leaks, f"customer ID {customer_id!r} in the logs:\n" + "\n".join(leaks)
