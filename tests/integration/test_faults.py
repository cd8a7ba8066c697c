"""Faults under load against real processes: Redis and the PostgreSQL decision log go away.

The API runs as in production (`python -m service`, 2 workers, Redis online store, SQL
registry and decision log on PostgreSQL). Redis and the decision log are reached through
a TCP proxy that the test cuts (connections reset, new ones refused, as when the server
stops) and restores (the server's data is still there, as after a restart). The Feast
registry is reached directly: this test is about the online read and the decision log.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import Stack, run_cli
from tests.integration.fault_proxy import FaultProxy
from tests.integration.servers import (
    REDIS_HOST,
    REDIS_PORT,
    database_url,
    flushed_redis,
    production_feature_env,
    redis_url,
    scratch_databases,
)
from training.serving import running_service

pytestmark = pytest.mark.integration

REDIS_DB = 14  # a database index kept for this test
CUSTOMERS = [f"C{n:07d}" for n in range(1, 1500, 7)]
MARKETING = {
    "credit_card_offer",
    "personal_loan_offer",
    "mortgage_consultation",
    "savings_account_offer",
    "investment_fund_offer",
}


@dataclass(frozen=True)
class FaultyService:
    url: str
    redis_proxy: FaultProxy
    postgres_proxy: FaultProxy
    decision_log_url: str


@pytest.fixture(scope="module")
def faulty(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultyService]:
    folder = tmp_path_factory.mktemp("faults")
    with (
        flushed_redis(REDIS_DB),
        scratch_databases("faults_registry", "faults_log") as (registry_db, log_db),
    ):
        env = {
            **production_feature_env(stack, folder, registry_db, redis_url(REDIS_DB)),
            "NBA_MODEL_POLL_SECONDS": "0",
        }
        run_cli(["features"], env, stack.root)
        with (
            FaultProxy((REDIS_HOST, REDIS_PORT)) as redis_proxy,
            FaultProxy(("127.0.0.1", 5432)) as postgres_proxy,
        ):
            served = {
                **env,
                "NBA_REDIS_URL": f"127.0.0.1:{redis_proxy.port},db={REDIS_DB}",
                "NBA_DECISION_LOG_URL": f"postgresql://postgres@127.0.0.1:{postgres_proxy.port}"
                f"/{log_db}",
                "NBA_WORKERS": "2",
                "NBA_FAULT_RETRY_AFTER_SECONDS": "3",
            }
            with running_service(served, stack.root, folder / "service.log") as url:
                yield FaultyService(url, redis_proxy, postgres_proxy, database_url(log_db))


@dataclass
class Load:
    """Client threads sending decisions without pause; every answer or error is kept."""

    url: str
    threads: int = 4
    answers: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _run(self, offset: int) -> None:
        # A new connection per request: the kernel spreads them over both workers, and each
        # worker has its own breakers (kept-alive connections could all land on one worker).
        no_keepalive = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=self.url, timeout=30, limits=no_keepalive) as client:
            n = offset
            while not self._stop.is_set():
                customer = CUSTOMERS[n % len(CUSTOMERS)]
                n += self.threads
                try:
                    response = client.post(
                        "/v1/decisions", json={"customer_id": customer, "touchpoint": "web"}
                    )
                except httpx.HTTPError as exc:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                self.answers.append((response.status_code, response.json()))

    def __enter__(self) -> Load:
        self._workers = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(self.threads)
        ]
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=60)

    def since(self, mark: int) -> list[dict[str, Any]]:
        return [body for _, body in self.answers[mark:]]

    def answers_before(self, mark: int) -> list[dict[str, Any]]:
        return [body for _, body in self.answers[:mark]]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_redis_down_under_load_answers_degraded_and_recovers(faulty: FaultyService) -> None:
    with Load(faulty.url) as load:
        # Every customer answered once before the fault, to compare with after the recovery.
        wait_for(lambda: len(load.answers) >= len(CUSTOMERS) + 8, "answers before the fault")
        cut_at = len(load.answers)
        faulty.redis_proxy.cut()
        wait_for(
            lambda: any("feature_store" in b.get("degraded", ()) for b in load.since(cut_at)),
            "a degraded answer",
        )
        time.sleep(3)  # the outage lasts a while under load
        readiness = [httpx.get(f"{faulty.url}/health/ready", timeout=10) for _ in range(4)]
        restored_at = len(load.answers)
        faulty.redis_proxy.restore()
        wait_for(
            lambda: any(b.get("personalised") for b in load.since(restored_at)),
            "a personalised answer after Redis is back",
        )
        # Every worker closes its breaker on its own: wait for a run of healthy answers.
        wait_for(
            lambda: (
                all(b["degraded"] == [] for b in load.since(restored_at)[-40:])
                and len(load.since(restored_at)) >= 40
            ),
            "40 undegraded answers in a row after Redis is back",
        )
        recovered_at = len(load.answers) - 40

    statuses = [status for status, _ in load.answers]
    outage = load.since(cut_at)[: restored_at - cut_at]
    degraded = [b for b in outage if "feature_store" in b["degraded"]]
    # Customers who refused profiling or are unknown are never personalised: compare each
    # answer after recovery with the same customer's answer before the outage.
    personalised_before = {b["customer_id"]: b["personalised"] for b in load.answers_before(cut_at)}
    print(
        f"\nRedis outage: {len(statuses)} requests, {len(load.errors)} transport errors, "
        f"non-200: {sum(s != 200 for s in statuses)}; {len(degraded)} of {len(outage)} answers "
        "during the outage degraded"
    )
    assert not load.errors
    assert set(statuses) == {200}
    assert all(r.status_code == 200 for r in readiness)
    assert all(r.json()["dependencies"]["feature_store"] == "open" for r in readiness)
    assert len(degraded) > len(outage) // 2
    for body in degraded:
        assert body["personalised"] is False
        assert body["action"]["action_id"] not in MARKETING  # consent cannot be read
        assert body["logged"] is True
    after = [b for b in load.since(recovered_at) if b["customer_id"] in personalised_before]
    assert after and all(b["personalised"] == personalised_before[b["customer_id"]] for b in after)
    assert any(personalised_before.values())
    assert httpx.get(f"{faulty.url}/health/ready").json()["dependencies"]["feature_store"] == (
        "closed"
    )


def _feedback(client: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    return client.post(
        "/v1/feedback",
        json={
            "decision_id": body["decision_id"],
            "action_id": body["ranked"][0]["action_id"],
            "outcome": "impression",
        },
    )


def _feedback_until_accepted(
    client: httpx.Client, body: dict[str, Any], timeout: float = 60
) -> httpx.Response:
    """Send feedback as a client should: after a 503, again once Retry-After has passed
    (each worker reconnects to the log on its own)."""
    deadline = time.monotonic() + timeout
    while (response := _feedback(client, body)).status_code == 503:
        if time.monotonic() > deadline:
            break
        time.sleep(min(float(response.headers["Retry-After"]), 1.0))
    return response


def test_decision_log_down_keeps_deciding_and_loses_no_acknowledged_feedback(
    faulty: FaultyService,
) -> None:
    acknowledged: set[str] = set()
    refused: list[dict[str, Any]] = []
    with httpx.Client(base_url=faulty.url, timeout=30) as client, Load(faulty.url) as load:
        before = [
            client.post("/v1/decisions", json={"customer_id": c, "touchpoint": "app"}).json()
            for c in CUSTOMERS[:30]
        ]
        assert all(b["logged"] for b in before)
        for body in before[:10]:
            response = _feedback(client, body)
            assert response.status_code == 202
            acknowledged.add(body["decision_id"])

        cut_at = len(load.answers)
        faulty.postgres_proxy.cut()
        wait_for(
            lambda: any("decision_log" in b.get("degraded", ()) for b in load.since(cut_at)),
            "an unlogged answer",
        )
        for body in before[10:]:
            response = _feedback(client, body)
            if response.status_code == 202:
                acknowledged.add(body["decision_id"])
                continue
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "decision_log_unavailable"
            assert int(response.headers["Retry-After"]) == 3
            refused.append(body)
        during = client.post(
            "/v1/decisions", json={"customer_id": CUSTOMERS[0], "touchpoint": "web"}
        ).json()
        time.sleep(2)  # the outage lasts a while under load
        restored_at = len(load.answers)
        faulty.postgres_proxy.restore()
        wait_for(
            lambda: any(b.get("logged") for b in load.since(restored_at)),
            "a logged answer after PostgreSQL is back",
        )
        retried = [_feedback_until_accepted(client, body) for body in refused]
        acknowledged |= {
            body["decision_id"]
            for body, response in zip(refused, retried, strict=True)
            if response.status_code == 202
        }
        wait_for(
            lambda: (
                len(load.since(restored_at)) >= 40
                and all(b["logged"] for b in load.since(restored_at)[-40:])
            ),
            "40 logged answers in a row after PostgreSQL is back",
        )

    statuses = [status for status, _ in load.answers]
    outage = load.since(cut_at)[: restored_at - cut_at]
    unlogged = [b for b in outage if "decision_log" in b["degraded"]]
    answered_logged = {
        b["decision_id"] for b in [*before, *(b for _, b in load.answers)] if b["logged"]
    }
    answered_unlogged = {b["decision_id"] for _, b in load.answers if not b["logged"]}
    with psycopg.connect(faulty.decision_log_url) as connection:
        stored_feedback = {
            row[0]
            for row in connection.execute(
                "SELECT decision_id FROM feedback WHERE outcome = 'impression'"
            )
        }
        stored_decisions = {
            row[0] for row in connection.execute("SELECT decision_id FROM decisions")
        }
    print(
        f"\nDecision-log outage: {len(statuses)} decisions under load, {len(load.errors)} "
        f"transport errors, non-200: {sum(s != 200 for s in statuses)}; {len(unlogged)} of "
        f"{len(outage)} answers during the outage unlogged; feedback: {len(refused)} refused "
        f"with 503, {len(acknowledged)} acknowledged, "
        f"{len(acknowledged & stored_feedback)} of them stored"
    )
    assert not load.errors
    assert set(statuses) == {200}
    assert refused, "feedback during the outage should have been refused"
    assert all(r.status_code == 202 for r in retried)
    assert acknowledged <= stored_feedback  # nothing acknowledged is lost
    assert len(acknowledged) == 30
    assert answered_logged <= stored_decisions  # "logged: true" is true
    assert not (answered_unlogged & stored_decisions)  # and "logged: false" too
    assert during["action"]["action_id"] == "no_action"
    assert during["logged"] is False and during["degraded"] == ["decision_log"]
    assert unlogged and all(b["action"]["action_id"] == "no_action" for b in unlogged)
