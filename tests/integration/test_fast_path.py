"""The decision fast path (`service.fast_path`) beside FastAPI's own route, in-process on
the small stack: the same answers, the same errors, and only valid requests take it."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from service import fast_path, routes
from service.app import create_app
from service.auth import issue_key
from service.engine import DecisionEngine
from service.routes import answer_decision
from service.runtime import Runtime
from service.schemas import DecisionRequest, ErrorResponse
from service.vocabulary import Scope
from tests.conftest import Stack
from tests.integration.conftest import CustomerPicker
from tests.integration.inprocess import Keys, app_settings, every_log_at_debug

pytestmark = pytest.mark.integration

# Different on every decision, whichever path answers it.
PER_DECISION = {"decision_id"}
BURST = 3  # requests a key may send at once
LATENCY_COUNT = "nba_http_request_duration_seconds_count"


def _client(stack: Stack, folder: Path, fast: bool) -> tuple[TestClient, Keys, str]:
    """An app with its own decision log and keys, plus a key without the `decide` scope."""
    settings, keys = app_settings(stack, folder, rate_limit_burst=BURST)
    assert settings.api_keys_file is not None
    feedback_only = issue_key(settings.api_keys_file, "feedback-only", [Scope.FEEDBACK])
    client = TestClient(create_app(settings, decision_fast_path=fast))
    return client, keys, feedback_only


@pytest.fixture(scope="module")
def clients(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, tuple[TestClient, Keys, str]]]:
    folder = tmp_path_factory.mktemp("fast_path")
    made = {
        "fast": _client(stack, folder / "fast", fast=True),
        "route": _client(stack, folder / "route", fast=False),
    }
    with made["fast"][0], made["route"][0]:
        yield made


@pytest.fixture
def fast_calls(monkeypatch: pytest.MonkeyPatch) -> list[DecisionRequest]:
    """The requests the fast path decided (the route calls its own `answer_decision`)."""
    calls: list[DecisionRequest] = []
    decide = answer_decision  # the object `service.fast_path` imported from `service.routes`

    async def spy(runtime: Runtime, body: DecisionRequest) -> Any:
        calls.append(body)
        return await decide(runtime, body)

    monkeypatch.setattr(fast_path, "answer_decision", spy)
    return calls


def _stable(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k not in PER_DECISION}


def test_a_valid_request_takes_the_fast_path_and_gets_the_routes_answer(
    clients: dict[str, tuple[TestClient, Keys, str]],
    fast_calls: list[DecisionRequest],
    picker: CustomerPicker,
) -> None:
    customer = picker.pick("consent_profiling == 1 and consent_marketing_web == 1")
    body = {"customer_id": customer, "touchpoint": "web", "explain": True}
    answers = {}
    for name, (client, keys, _) in clients.items():
        response = client.post("/v1/decisions", json=body, headers=keys.headers)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.headers["x-request-id"]
        answers[name] = response.json()
    assert [c.customer_id for c in fast_calls] == [customer], "only the fast app took it"
    assert answers["fast"].keys() >= PER_DECISION
    assert answers["fast"]["reasons"], "reasons are on by default"
    assert _stable(answers["fast"]) == _stable(answers["route"])


BAD_BODIES: list[tuple[str, str, bytes]] = [
    ("unknown touchpoint", "application/json", b'{"customer_id": "C1", "touchpoint": "fax"}'),
    ("extra field", "application/json", b'{"customer_id": "C1", "touchpoint": "web", "x": 1}'),
    (
        "reasons not a bool",
        "application/json",
        b'{"customer_id": "C1", "touchpoint": "web", "reasons": 1}',
    ),
    ("malformed JSON", "application/json", b'{"customer_id": '),
    ("not UTF-8", "application/json", b'{"customer_id": "\xff"}'),
    ("empty body", "application/json", b""),
]


@pytest.mark.parametrize(
    ("case", "content_type", "body"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES]
)
def test_a_body_that_does_not_validate_gets_fastapis_answer(
    clients: dict[str, tuple[TestClient, Keys, str]],
    fast_calls: list[DecisionRequest],
    case: str,
    content_type: str,
    body: bytes,
) -> None:
    answers = []
    for client, keys, _ in clients.values():
        headers = {**keys.headers, "content-type": content_type}
        response = client.post("/v1/decisions", content=body, headers=headers)
        assert response.status_code == 422, (case, response.text)
        answers.append(response.json())
    assert answers[0] == answers[1], case
    assert ErrorResponse.model_validate(answers[0]).error.code == "invalid_request"
    assert not fast_calls


def test_another_content_type_goes_to_fastapi(
    clients: dict[str, tuple[TestClient, Keys, str]],
    fast_calls: list[DecisionRequest],
    picker: CustomerPicker,
) -> None:
    client, keys, _ = clients["fast"]
    body = json.dumps({"customer_id": picker.pick("consent_profiling == 1"), "touchpoint": "web"})
    headers = {**keys.headers, "content-type": "application/vnd.api+json"}
    response = client.post("/v1/decisions", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert not fast_calls, "FastAPI's route answered"


def test_keys_are_checked_on_the_fast_path_with_the_routes_errors(
    clients: dict[str, tuple[TestClient, Keys, str]],
    fast_calls: list[DecisionRequest],
) -> None:
    body = {"customer_id": "C0000001", "touchpoint": "web"}
    for client, _, feedback_only in clients.values():
        cases = [
            ({}, 401, "api_key_missing"),
            ({"X-API-Key": "nba_not-a-key"}, 401, "api_key_invalid"),
            ({"Authorization": f"Bearer {feedback_only}"}, 403, "scope_missing"),
        ]
        for headers, status, code in cases:
            response = client.post("/v1/decisions", json=body, headers=headers)
            assert response.status_code == status, response.text
            assert ErrorResponse.model_validate(response.json()).error.code == code
    assert not fast_calls


def test_the_throttled_key_gets_429_with_retry_after_on_the_fast_path(
    clients: dict[str, tuple[TestClient, Keys, str]],
    fast_calls: list[DecisionRequest],
    picker: CustomerPicker,
) -> None:
    client, keys, _ = clients["fast"]
    body = {"customer_id": picker.pick("consent_profiling == 1"), "touchpoint": "app"}
    headers = {"X-API-Key": keys.throttled}
    statuses = [client.post("/v1/decisions", json=body, headers=headers) for _ in range(BURST + 2)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited, "the key's burst ran out"
    assert int(limited[0].headers["retry-after"]) > 0
    assert ErrorResponse.model_validate(limited[0].json()).error.code == "rate_limited"
    assert len(fast_calls) == sum(1 for r in statuses if r.status_code == 200) > 0


def test_the_access_log_names_the_route_and_the_caller(
    clients: dict[str, tuple[TestClient, Keys, str]],
    fast_calls: list[DecisionRequest],
    picker: CustomerPicker,
) -> None:
    client, keys, _ = clients["fast"]
    body = {"customer_id": picker.pick("consent_profiling == 1"), "touchpoint": "email"}
    labels = {"route": "/v1/decisions", "method": "POST", "status": "200"}
    before = REGISTRY.get_sample_value(LATENCY_COUNT, labels) or 0
    with every_log_at_debug() as lines:
        assert client.post("/v1/decisions", json=body, headers=keys.headers).status_code == 200
    access = [json.loads(line.split("\n", 1)[0]) for line in lines if "nba.access" in line]
    assert len(fast_calls) == 1
    assert [(a["route"], a["status"], a["caller"]) for a in access] == [
        ("/v1/decisions", 200, "full")
    ]
    assert REGISTRY.get_sample_value(LATENCY_COUNT, labels) == before + 1


def test_decisions_leave_the_event_loop_while_a_dependency_is_failing(
    clients: dict[str, tuple[TestClient, Keys, str]],
    monkeypatch: pytest.MonkeyPatch,
    picker: CustomerPicker,
) -> None:
    """On both paths: the loop's own thread while every breaker is closed, one of the
    runtime's decision threads while the feature store's is open (`service.placement`)."""
    threads: list[str] = []
    on_a_loop: list[bool] = []  # whether the decision's thread runs an event loop
    decide = routes.decision_response

    def spy(engine: DecisionEngine, body: DecisionRequest) -> Any:
        threads.append(threading.current_thread().name)
        try:
            asyncio.get_running_loop()
            on_a_loop.append(True)
        except RuntimeError:
            on_a_loop.append(False)
        return decide(engine, body)

    monkeypatch.setattr(routes, "decision_response", spy)
    body = {"customer_id": picker.pick("consent_profiling == 1"), "touchpoint": "web"}
    for client, keys, _ in clients.values():
        runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
        assert client.post("/v1/decisions", json=body, headers=keys.headers).status_code == 200
        runtime.features.breaker.failure("test: the feature store is failing")
        try:
            answer = client.post("/v1/decisions", json=body, headers=keys.headers)
        finally:
            runtime.features.breaker.success()
        assert answer.status_code == 200 and answer.json()["degraded"] == ["feature_store"]
    assert on_a_loop == [True, False, True, False]
    assert all(name.startswith("decide") for name in threads[1::2])
