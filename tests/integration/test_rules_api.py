"""Catalog rules, consent, contact policy, reasons and 'why not' through the real HTTP API."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import yaml

from service.settings import DEFAULT_CATALOG
from tests.integration.conftest import CustomerPicker, Service

pytestmark = pytest.mark.integration

ALL_CONSENT = (
    "consent_profiling == 1 and consent_marketing_web == 1 and "
    "consent_marketing_call_center == 1 and consent_marketing_store == 1"
)
CALM = f"open_complaints == 0 and {ALL_CONSENT}"
MARKETING_ACTIONS_AT_WEB = {
    "credit_card_offer",
    "personal_loan_offer",
    "mortgage_consultation",
    "savings_account_offer",
    "investment_fund_offer",
    "premium_account_upgrade",
    "travel_insurance_offer",
    "home_insurance_offer",
    "overdraft_increase",
    "fee_waiver",
    "loyalty_rate_bonus",
    "new_app_features",
}


def decide(api: httpx.Client, customer: str, touchpoint: str, **extra: Any) -> dict[str, Any]:
    response = api.post(
        "/v1/decisions", json={"customer_id": customer, "touchpoint": touchpoint, **extra}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def dropped_by(body: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {d["action_id"]: d for d in body["dropped"]}


def test_open_complaint_is_fixed_first_with_reasons_and_why_not(
    api: httpx.Client, picker: CustomerPicker
) -> None:
    customer = picker.pick(f"open_complaints > 0 and {ALL_CONSENT}")
    body = decide(api, customer, "call_center", explain=True)
    assert body["action"]["action_id"] == "resolve_complaint"
    assert "must-do action (priority 10)" in body["explanation"]
    assert body["reasons"], "a personalised answer explains itself"
    assert all(r["contribution"] > 0 and r["text"] for r in body["reasons"])
    why_not = dropped_by(body)
    offers = {a for a, d in why_not.items() if a.endswith("_offer")}
    assert offers, "every offer is removed for a customer with an open complaint"
    for offer in offers:
        assert why_not[offer]["rule"] == "eligibility"
        assert "does not hold" in why_not[offer]["detail"]
    assert any(
        "open_complaints == 0 does not hold (open_complaints is 1)" in why_not[o]["detail"]
        for o in offers
    )
    assert not any(r["type"] == "offer" for r in body["ranked"])


def test_without_marketing_consent_only_non_marketing_actions(
    api: httpx.Client, picker: CustomerPicker
) -> None:
    customer = picker.pick("consent_marketing_web == 0 and consent_profiling == 1")
    body = decide(api, customer, "web", explain=True)
    assert all(r["type"] in ("service", "info", "no_action") for r in body["ranked"])
    assert body["action"]["action_id"] not in MARKETING_ACTIONS_AT_WEB
    consent_drops = {a for a, d in dropped_by(body).items() if d["rule"] == "marketing_consent"}
    assert consent_drops == MARKETING_ACTIONS_AT_WEB
    assert "no marketing consent for web" in dropped_by(body)["credit_card_offer"]["detail"]


def test_profiling_objection_is_answered_without_personal_data(
    api: httpx.Client, picker: CustomerPicker
) -> None:
    customer = picker.pick("consent_profiling == 0 and consent_marketing_store == 1")
    body = decide(api, customer, "store")
    assert body["personalised"] is False
    assert body["reasons"] == []
    assert "objected to profiling" in body["notices"][0]


def test_complaint_first_holds_even_without_consents(
    api: httpx.Client, picker: CustomerPicker
) -> None:
    customer = picker.pick(
        "open_complaints > 0 and consent_profiling == 0 and consent_marketing_store == 0"
    )
    body = decide(api, customer, "store", explain=True)
    assert body["action"]["action_id"] == "resolve_complaint"
    assert body["personalised"] is False
    assert {d["rule"] for d in body["dropped"]} >= {"marketing_consent"}


def test_customer_contact_cap_then_no_action_with_trace(
    api: httpx.Client, picker: CustomerPicker
) -> None:
    customer = picker.pick(CALM)
    shown = [decide(api, customer, "call_center")["action"]["action_id"] for _ in range(3)]
    assert "no_action" not in shown
    fourth = decide(api, customer, "call_center", explain=True)
    assert fourth["action"]["action_id"] == "no_action"
    caps = [d for d in fourth["dropped"] if d["rule"] == "customer_contact_cap"]
    assert caps and all("3 contacts in the last 7 days (cap 3)" in d["detail"] for d in caps)
    assert fourth["ranked"] == [fourth["action"]]


def test_per_action_cap_moves_to_the_next_best_action(
    api: httpx.Client, service: Service, picker: CustomerPicker
) -> None:
    catalog = yaml.safe_load(service.catalog_path.read_text(encoding="utf-8"))
    caps = {a["id"]: a.get("contact_policy", {}).get("cap") for a in catalog["actions"]}
    customer = picker.pick(CALM)
    counts: dict[str, int] = {}
    checked = 0
    for _ in range(3):
        body = decide(api, customer, "call_center", explain=True)
        for action_id, count in counts.items():
            cap = caps[action_id]
            if cap and count >= cap["max_count"]:
                drop = dropped_by(body)[action_id]
                assert drop["rule"] == "action_contact_cap"
                assert f"(cap {cap['max_count']})" in drop["detail"]
                assert body["action"]["action_id"] != action_id
                checked += 1
        shown = body["action"]["action_id"]
        counts[shown] = counts.get(shown, 0) + 1
    assert checked, f"no action reached its cap in three contacts: {counts}"


def test_concurrent_requests_for_one_customer_never_break_the_cap(
    api: httpx.Client, picker: CustomerPicker
) -> None:
    customer = picker.pick(CALM)
    with ThreadPoolExecutor(max_workers=12) as pool:
        bodies = list(pool.map(lambda _: decide(api, customer, "call_center"), range(24)))
    shown = [b for b in bodies if b["action"]["action_id"] != "no_action"]
    assert len(shown) == 3
    assert len({b["decision_id"] for b in bodies}) == 24


def test_reasons_can_be_switched_off(api: httpx.Client, picker: CustomerPicker) -> None:
    customer = picker.pick(CALM)
    body = decide(api, customer, "call_center", reasons=False)
    assert body["reasons"] == []
    assert body["dropped"] is None, "the 'why not' trace comes only with explain: true"


def test_exploration_logs_the_probability_it_used(
    api: httpx.Client, picker: CustomerPicker
) -> None:
    probabilities = set()
    for _ in range(8):
        body = decide(api, picker.pick(CALM), "web")
        p = body["selection_probability"]
        assert 0 < p <= 1
        if not body["explored"]:
            assert p >= 0.95  # 1 - epsilon + epsilon / pool size
        probabilities.add(p)
    assert max(probabilities) < 1.0, "web explores with epsilon 0.05: never certainty"


def _write_catalog(service: Service, raw: dict[str, Any]) -> None:
    service.catalog_path.write_text(yaml.safe_dump(raw), encoding="utf-8")


def _wait_for(api: httpx.Client, predicate: Any, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while True:
        ready: dict[str, Any] = api.get("/health/ready").json()
        if predicate(ready):
            return ready
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {ready}"
        time.sleep(0.1)


def test_catalog_reload_applies_good_changes_and_refuses_broken_ones(
    api: httpx.Client, service: Service, picker: CustomerPicker
) -> None:
    shipped = yaml.safe_load(DEFAULT_CATALOG.read_text(encoding="utf-8"))
    try:
        raised = yaml.safe_load(DEFAULT_CATALOG.read_text(encoding="utf-8"))
        raised["policy"]["no_action_threshold"] = 100_000
        for entry in raised["actions"]:
            if entry["id"] == "security_tips":
                entry["valid_until"] = "2020-12-31"
            if entry["id"] == "financial_health_check":
                entry["valid_from"] = "2099-01-01"
        before = api.get("/health/ready").json()["catalog"]["loaded_at"]
        _write_catalog(service, raised)
        _wait_for(api, lambda r: r["catalog"]["loaded_at"] > before, "the reload")
        body = decide(api, picker.pick(CALM), "call_center", explain=True)
        assert body["action"]["action_id"] == "no_action"
        why_not = dropped_by(body)
        assert why_not["security_tips"] == {
            "action_id": "security_tips",
            "rule": "expired",
            "detail": "valid until 2020-12-31",
        }
        assert why_not["financial_health_check"]["rule"] == "not_yet_valid"

        broken = yaml.safe_load(DEFAULT_CATALOG.read_text(encoding="utf-8"))
        broken["actions"][0]["value"] = "a lot"
        _write_catalog(service, broken)
        ready = _wait_for(api, lambda r: r["catalog"]["last_reload_error"], "the refusal")
        assert "action 'credit_card_offer'" in ready["catalog"]["last_reload_error"]
        assert "field 'value'" in ready["catalog"]["last_reload_error"]
        # The last good catalog (threshold 100,000) keeps serving.
        assert decide(api, picker.pick(CALM), "call_center")["action"]["action_id"] == "no_action"
    finally:
        restored_at = time.time()
        _write_catalog(service, shipped)
        _wait_for(
            api,
            lambda r: (
                r["catalog"]["loaded_at"] >= restored_at
                and r["catalog"]["last_reload_error"] is None
            ),
            "the restore",
        )
