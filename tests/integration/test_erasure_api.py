"""Customer erasure and the admin audit log over real HTTP, with API keys: `python -m service`
on the stack `nba demo` built (SQLite online store and decision log)."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import pandas as pd
import pytest

from service.auth import issue_key
from service.decision_log import SqliteDecisionLog
from service.engine import UNKNOWN_CUSTOMER_NOTICE
from service.vocabulary import Scope
from tests.conftest import Stack
from tests.integration.conftest import CustomerPicker
from training.serving import running_service

pytestmark = pytest.mark.integration

PERSONALISED = "consent_profiling == 1"
VIEWS = ["customer_activity", "customer_consent", "customer_profile"]


@dataclass(frozen=True)
class KeyedService:
    """A running service with an admin key and a decide-only key, and its files."""

    client: httpx.Client
    keys: dict[str, str]
    decision_log: Path
    log_path: Path

    def call(
        self, method: str, path: str, key: str, request_id: str, **kw: object
    ) -> httpx.Response:
        headers = {"X-API-Key": self.keys[key], "X-Request-ID": request_id}
        return self.client.request(method, path, headers=headers, **kw)  # type: ignore[arg-type]

    def decide(self, customer: str) -> dict[str, object]:
        response = self.client.post(
            "/v1/decisions",
            json={"customer_id": customer, "touchpoint": "web"},
            headers={"X-API-Key": self.keys["web"]},
        )
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body

    def audit(self) -> pd.DataFrame:
        log = SqliteDecisionLog(self.decision_log)
        try:
            return log.audit_frame()
        finally:
            log.close()

    def audited(self, request_id: str) -> list[dict[str, object]]:
        frame = self.audit()
        records = frame[frame["request_id"] == request_id].to_dict("records")
        rows = cast(list[dict[str, object]], records)  # the audit frame's columns are strings
        return rows


@pytest.fixture(scope="module")
def keyed(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyedService]:
    folder = tmp_path_factory.mktemp("erasure")
    keys_file = folder / "api_keys.yaml"
    keys = {
        "ops": issue_key(keys_file, "ops", [Scope.ADMIN]),
        "web": issue_key(keys_file, "web", [Scope.DECIDE]),
    }
    decision_log = folder / "decision_log.db"
    env = {
        **stack.env,
        "NBA_API_KEYS_FILE": str(keys_file),
        "NBA_DECISION_LOG_PATH": str(decision_log),
        "NBA_MODEL_POLL_SECONDS": "0",
        "NBA_CATALOG_RELOAD_SECONDS": "0",
    }
    log_path = folder / "service.log"
    with (
        running_service(env, stack.root, log_path) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        yield KeyedService(client, keys, decision_log, log_path)


def _logged_ids(path: Path, decision_ids: list[str]) -> dict[str, str]:
    with sqlite3.connect(path) as db:
        rows = db.execute(
            f"SELECT decision_id, customer_id FROM decisions "
            f"WHERE decision_id IN ({', '.join('?' * len(decision_ids))})",
            decision_ids,
        ).fetchall()
    return dict(rows)


def _rows_of(path: Path, customer: str) -> int:
    with sqlite3.connect(path) as db:
        count = db.execute("SELECT count(*) FROM decisions WHERE customer_id = ?", (customer,))
        return int(count.fetchone()[0])


def test_erasure_forgets_the_customer(keyed: KeyedService, picker: CustomerPicker) -> None:
    customer = picker.pick(PERSONALISED)
    subject = hashlib.sha256(customer.encode()).hexdigest()
    path = f"/admin/customers/{customer}"
    before = [keyed.decide(customer) for _ in range(2)]
    assert all(b["personalised"] is True for b in before)

    denied = keyed.call("DELETE", path, "web", "erase-denied")
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "scope_missing"
    assert keyed.decide(customer)["personalised"] is True, "a refused erasure erased nothing"
    decision_ids = [str(b["decision_id"]) for b in before]
    decision_ids.append(str(keyed.decide(customer)["decision_id"]))
    assert _rows_of(keyed.decision_log, customer) == 4

    erased = keyed.call("DELETE", path, "ops", "erase-1")
    assert erased.status_code == 200, erased.text
    body = erased.json()
    assert body["feature_views_cleared"] == VIEWS
    assert body["decisions_pseudonymised"] == 4
    assert erased.headers["x-request-id"] == "erase-1"

    again = keyed.call("DELETE", path, "ops", "erase-2")
    assert again.status_code == 200
    assert again.json()["feature_views_cleared"] == []
    assert again.json()["decisions_pseudonymised"] == 0

    after = keyed.decide(customer)
    assert after["personalised"] is False
    assert UNKNOWN_CUSTOMER_NOTICE in after["notices"]  # type: ignore[operator]

    # Decision log: the erased rows stay (training, evaluation) under one pseudonym; the
    # only row with the ID is the decision asked for after the erasure.
    logged = _logged_ids(keyed.decision_log, decision_ids)
    assert len(logged) == 3 and len(set(logged.values())) == 1
    assert next(iter(logged.values())).startswith("erased:")
    assert _rows_of(keyed.decision_log, customer) == 1

    # Audit log: the refused call, the erasure and its repetition; the hash, never the ID.
    assert [
        (r["caller"], r["action"], r["outcome"], r["subject"])
        for r in (
            *keyed.audited("erase-denied"),
            *keyed.audited("erase-1"),
            *keyed.audited("erase-2"),
        )
    ] == [
        ("web", "erase_customer", "scope_missing", subject),
        ("ops", "erase_customer", "ok", subject),
        ("ops", "erase_customer", "ok", subject),
    ]
    assert customer not in keyed.audit().to_csv()
    service_log = keyed.log_path.read_text()
    assert "admin action erase_customer by ops: ok" in service_log
    assert customer not in service_log


def test_every_admin_action_is_audited(keyed: KeyedService, picker: CustomerPicker) -> None:
    customer = picker.pick(PERSONALISED)
    subject = hashlib.sha256(customer.encode()).hexdigest()
    consent = f"/admin/customers/{customer}/consent"
    body = {"marketing": ["web"], "profiling": True}
    assert keyed.call("PUT", consent, "ops", "consent-1", json=body).status_code == 200
    assert keyed.call("POST", "/admin/models/reload", "ops", "reload-1").status_code == 200
    bad = keyed.call("PUT", consent, "ops", "consent-bad", json={"marketing": ["fax"]})
    assert bad.status_code == 422
    anonymous = keyed.client.post("/admin/models/reload", headers={"X-Request-ID": "no-key"})
    assert anonymous.status_code == 401

    def entry(request_id: str) -> tuple[Any, ...]:
        (row,) = keyed.audited(request_id)
        assert isinstance(row["at"], float) and row["at"] > 1.7e9
        return (row["caller"], row["action"], row["outcome"], row["subject"])

    assert entry("consent-1") == ("ops", "update_consent", "ok", subject)
    caller, action, outcome, no_subject = entry("reload-1")
    assert (caller, action, outcome) == ("ops", "reload_models", "ok") and pd.isna(no_subject)
    assert entry("consent-bad") == ("ops", "update_consent", "invalid_request", subject)
    assert keyed.audited("no-key") == [], "a call without a key names no caller"
