"""POST /v1/feedback over real HTTP: durable, idempotent, validated, and read by the rules."""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import Stack
from tests.integration.conftest import CustomerPicker

pytestmark = pytest.mark.integration

CALM = "open_complaints == 0 and consent_profiling == 1 and consent_marketing_call_center == 1"


def decide(api: httpx.Client, customer: str, **extra: Any) -> dict[str, Any]:
    response = api.post(
        "/v1/decisions", json={"customer_id": customer, "touchpoint": "call_center", **extra}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def feedback(api: httpx.Client, decision_id: str, action_id: str, outcome: str) -> httpx.Response:
    return api.post(
        "/v1/feedback",
        json={"decision_id": decision_id, "action_id": action_id, "outcome": outcome},
    )


def test_feedback_is_durable_and_idempotent(
    api: httpx.Client, stack: Stack, picker: CustomerPicker
) -> None:
    body = decide(api, picker.pick(CALM))
    action = body["action"]["action_id"]
    first = feedback(api, body["decision_id"], action, "accept")
    assert first.status_code == 202
    assert first.json()["status"] == "recorded"
    again = feedback(api, body["decision_id"], action, "accept")
    assert again.status_code == 202 and again.json()["status"] == "duplicate"
    assert feedback(api, body["decision_id"], action, "click").json()["status"] == "recorded"
    with sqlite3.connect(stack.root / "data" / "decision_log.db") as db:
        rows = db.execute(
            "SELECT outcome FROM feedback WHERE decision_id = ?", (body["decision_id"],)
        ).fetchall()
        logged = db.execute(
            "SELECT chosen_action, selection_probability, model_version "
            "FROM decisions WHERE decision_id = ?",
            (body["decision_id"],),
        ).fetchone()
    assert sorted(r[0] for r in rows) == ["accept", "click"]
    assert logged == (action, body["selection_probability"], "2")


def test_unknown_decision_is_404(api: httpx.Client) -> None:
    response = feedback(api, str(uuid.uuid4()), "credit_card_offer", "accept")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "decision_not_found"


def test_action_outside_the_decision_is_422(api: httpx.Client, picker: CustomerPicker) -> None:
    body = decide(api, picker.pick(f"{CALM} and has_mortgage == 1"))
    response = feedback(api, body["decision_id"], "mortgage_consultation", "accept")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "action_not_in_decision"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (
            {"decision_id": "not-a-uuid", "action_id": "fee_waiver", "outcome": "accept"},
            "decision_id",
        ),
        (
            {"decision_id": str(uuid.uuid4()), "action_id": "fee_waiver", "outcome": "maybe"},
            "outcome",
        ),
        ({"decision_id": str(uuid.uuid4()), "outcome": "accept"}, "action_id"),
    ],
)
def test_bad_feedback_is_422_naming_the_field(
    api: httpx.Client, payload: dict[str, str], field: str
) -> None:
    response = api.post("/v1/feedback", json=payload)
    assert response.status_code == 422
    assert field in [d["field"] for d in response.json()["error"]["details"]]


def test_a_no_is_respected_at_the_next_contact(api: httpx.Client, picker: CustomerPicker) -> None:
    customer = picker.pick(CALM)
    body = decide(api, customer)
    action = body["action"]["action_id"]
    assert action != "no_action"
    assert feedback(api, body["decision_id"], action, "reject").status_code == 202
    after = decide(api, customer, explain=True)
    assert after["action"]["action_id"] != action
    drop = next(d for d in after["dropped"] if d["action_id"] == action)
    assert drop["rule"] == "cooldown_after_reject"
    assert "customer said no 0.0 days ago" in drop["detail"]
