"""Two service replicas sharing one Redis online store and one PostgreSQL decision log.

Two separate `python -m service` processes (two workers each, as two machines would run
them) serve decisions from the same Redis database and record them in the same PostgreSQL
database. Threads hammer both replicas at once with decisions for ONE customer; the
contact policy (read under a per-customer advisory lock in the decision-log transaction)
must let exactly the catalog's customer cap of contacts through, never one more.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
import pandas as pd
import psycopg
import pytest

from service.catalog import Catalog
from tests.conftest import Stack, run_cli
from tests.integration.servers import (
    database_url,
    flushed_redis,
    production_feature_env,
    redis_url,
    scratch_databases,
)
from training.serving import running_service

pytestmark = pytest.mark.integration

REDIS_DB = 10  # a database index kept for this test
THREADS_PER_REPLICA = 4
REQUESTS_PER_THREAD = 6
STARTUP_SECONDS = 300.0  # two workers importing Feast, MLflow and LightGBM on a busy machine


@dataclass(frozen=True)
class SharedStores:
    """The environment both replicas start with, and the decision log's URL."""

    env: dict[str, str]
    decision_log_url: str


@pytest.fixture(scope="module")
def shared_stores(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedStores]:
    """Features materialised into Redis db 10; Feast registry and decision log in one fresh
    PostgreSQL database `replicas_<random>`, dropped afterwards."""
    folder = tmp_path_factory.mktemp("replicas")
    with flushed_redis(REDIS_DB) as cache, scratch_databases("replicas") as (name,):
        env = {
            **production_feature_env(stack, folder, name, redis_url(REDIS_DB)),
            "NBA_DECISION_LOG_URL": database_url(name),
            "NBA_MODEL_POLL_SECONDS": "0",
            "NBA_CATALOG_RELOAD_SECONDS": "0",
        }
        run_cli(["features"], env, stack.root)  # feast apply + materialize into Redis
        assert cast(int, cache.dbsize()) > 1000
        yield SharedStores(env, database_url(name))


@pytest.fixture(scope="module")
def replicas(
    shared_stores: SharedStores, stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[str]]:
    """Base URLs of two independent service processes (two workers each)."""
    folder = tmp_path_factory.mktemp("replica-processes")
    with ExitStack() as processes:
        urls = []
        for index in range(2):
            own = folder / f"replica{index}"
            (own / "metrics").mkdir(parents=True)
            env = {
                **shared_stores.env,
                "NBA_WORKERS": "2",
                "NBA_MODEL_CACHE_DIR": str(own / "models"),  # each machine has its own copy
                "PROMETHEUS_MULTIPROC_DIR": str(own / "metrics"),
            }
            log_path = own / "service.log"
            urls.append(
                processes.enter_context(
                    running_service(env, stack.root, log_path, startup_timeout=STARTUP_SECONDS)
                )
            )
        yield urls


@pytest.fixture(scope="module")
def marketable_customer(stack: Stack) -> str:
    """A customer who may be offered marketing at the call center and lacks most products,
    so that enough actions beat the threshold to reach the customer contact cap."""
    data = stack.feature_repo / "data"
    activity = pd.read_parquet(data / "customer_activity.parquet")
    latest = activity.sort_values("event_timestamp").groupby("customer_id").tail(1)
    frame = (
        latest.drop(columns="event_timestamp")
        .merge(pd.read_parquet(data / "customer_profile.parquet").drop(columns="event_timestamp"))
        .merge(pd.read_parquet(data / "customer_consent.parquet").drop(columns="event_timestamp"))
    )
    wanted = frame.query(
        "consent_marketing_call_center == 1 and consent_profiling == 1 and open_complaints == 0"
        " and has_credit_card == 0 and has_savings == 0 and has_insurance == 0"
        " and is_premium == 0 and balance_trend_90d > -0.3"
    )
    assert len(wanted) > 0, "the simulated world has no customer to test the caps with"
    return str(sorted(wanted["customer_id"])[0])


@dataclass
class Answers:
    """Every answer the client threads received, shared between them."""

    bodies: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (replica, body)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def warm_up(urls: list[str], customer: str) -> None:
    """A few decisions for other customers than `customer` on every replica, so that no
    worker is still cold (first feature read, first model call) when the burst starts."""
    others = [f"C{n:07d}" for n in range(1, 10) if f"C{n:07d}" != customer][:8]
    for url in urls:
        with httpx.Client(base_url=url, timeout=60) as http:
            for other in others:
                response = http.post(
                    "/v1/decisions", json={"customer_id": other, "touchpoint": "web"}
                )
                assert response.status_code == 200, response.text


def hammer(urls: list[str], customer: str) -> Answers:
    """Decisions for `customer` from several threads per replica, all released at once."""
    answers = Answers()
    start = threading.Barrier(len(urls) * THREADS_PER_REPLICA)

    def client(replica: int) -> None:
        with httpx.Client(base_url=urls[replica], timeout=60) as http:
            start.wait()
            for _ in range(REQUESTS_PER_THREAD):
                response = http.post(
                    "/v1/decisions",
                    json={
                        "customer_id": customer,
                        "touchpoint": "call_center",
                        "reasons": False,
                        "explain": True,
                    },
                )
                with answers.lock:
                    if response.status_code == 200:
                        answers.bodies.append((replica, response.json()))
                    else:
                        answers.failures.append(f"{response.status_code} {response.text}")

    threads = [
        threading.Thread(target=client, args=(replica,))
        for replica in range(len(urls))
        for _ in range(THREADS_PER_REPLICA)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads), "a client thread hung"
    return answers


def test_caps_hold_across_two_replicas(
    replicas: list[str],
    shared_stores: SharedStores,
    marketable_customer: str,
    catalog: Catalog,
) -> None:
    cap = catalog.policy.customer_contact_cap
    assert cap is not None
    action_caps = {
        a.id: a.contact_policy.cap.max_count for a in catalog.actions if a.contact_policy.cap
    }

    warm_up(replicas, marketable_customer)
    answers = hammer(replicas, marketable_customer)

    assert not answers.failures, answers.failures[:3]
    sent = len(replicas) * THREADS_PER_REPLICA * REQUESTS_PER_THREAD
    assert len(answers.bodies) == sent
    assert {replica for replica, _ in answers.bodies} == {0, 1}
    assert all(body["logged"] and body["personalised"] for _, body in answers.bodies)
    shown = [
        (replica, body["action"]["action_id"])
        for replica, body in answers.bodies
        if body["action"]["action_id"] != "no_action"
    ]
    capped = [
        body
        for _, body in answers.bodies
        if any(d["rule"] == "customer_contact_cap" for d in body["dropped"] or [])
    ]
    with psycopg.connect(shared_stores.decision_log_url) as db:
        logged = db.execute(
            "SELECT decision_id, chosen_action FROM decisions WHERE customer_id = %s",
            (marketable_customer,),
        ).fetchall()
    logged_contacts = Counter(action for _, action in logged if action != "no_action")
    print(
        f"\nreplicas: {sent} concurrent decisions for {marketable_customer} on "
        f"{len(replicas)} replicas; shown {len(shown)} (customer cap {cap.max_count} per "
        f"{cap.window_days:g} days): {sorted(shown)}; answers naming the cap {len(capped)}"
    )
    assert {d for d, _ in logged} == {body["decision_id"] for _, body in answers.bodies}
    assert len(shown) == sum(logged_contacts.values()) == cap.max_count
    assert Counter(action for _, action in shown) == logged_contacts
    for action, count in logged_contacts.items():
        assert count <= action_caps.get(action, cap.max_count), (action, count)
    assert len(capped) == sent - cap.max_count  # every other answer names the cap
