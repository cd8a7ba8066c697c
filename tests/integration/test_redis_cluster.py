"""The Redis Cluster profile (`feature_repo/profiles/redis-cluster.yaml`) on a real cluster.

A three-master Redis Cluster is started from the installed `redis-server` on ports
7101-7103 in a temporary folder; `nba features` applies the repo (SQL registry on the
local PostgreSQL) and materialises into the cluster; `python -m service` then serves
personalised decisions from it, and a consent update and an erasure go through it.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import httpx
import pytest
import redis
from feast.infra.online_stores.redis import RedisOnlineStore
from redis.cluster import RedisCluster

from service.engine import UNKNOWN_CUSTOMER_NOTICE
from service.feature_client import OnlineFeatures
from tests.conftest import Stack, run_cli
from tests.integration.servers import production_feature_env, scratch_databases
from training.serving import running_service

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
PORTS = (7101, 7102, 7103)  # kept for this test
SLOTS = 16384
SERVICES = ["nba_model_features", "nba_consent"]


def _wait_until(check: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except redis.ConnectionError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached in {timeout:g} s")


def _cluster_ready(node: redis.Redis) -> bool:
    info = cast(dict[str, str], node.cluster("info"))  # a synchronous client: parsed INFO
    return bool(info["cluster_state"] == "ok" and int(info["cluster_known_nodes"]) == len(PORTS))


@pytest.fixture(scope="module")
def cluster_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh three-master cluster (no replicas); yields its nodes as `host:port,...`."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not on PATH: Redis Cluster test skipped")
    for port in PORTS:
        try:
            redis.Redis(host=HOST, port=port, socket_connect_timeout=0.5).ping()
        except redis.ConnectionError:
            continue
        pytest.fail(f"port {port} is taken by another Redis: stop it or free ports {PORTS}")
    folder = tmp_path_factory.mktemp("redis-cluster")
    processes = []
    try:
        for port in PORTS:
            processes.append(
                subprocess.Popen(
                    [
                        server,
                        *("--port", str(port), "--bind", HOST, "--dir", str(folder)),
                        *("--cluster-enabled", "yes", "--cluster-node-timeout", "5000"),
                        *("--cluster-config-file", f"nodes-{port}.conf"),
                        *("--save", "", "--appendonly", "no", "--daemonize", "no"),
                        *("--logfile", str(folder / f"redis-{port}.log")),
                    ]
                )
            )
        nodes = [redis.Redis(host=HOST, port=port) for port in PORTS]
        for node in nodes:
            _wait_until(node.ping, "redis-server start")
        share = SLOTS // len(PORTS)
        for index, node in enumerate(nodes):
            last = SLOTS - 1 if index == len(nodes) - 1 else (index + 1) * share - 1
            # redis-py leaves `execute_command` unannotated
            node.execute_command(  # type: ignore[no-untyped-call]
                "CLUSTER ADDSLOTSRANGE", index * share, last
            )
        for port in PORTS[1:]:
            nodes[0].execute_command("CLUSTER MEET", HOST, port)  # type: ignore[no-untyped-call]
        for node in nodes:
            _wait_until(
                # mypy cannot infer a lambda whose only parameter binds the loop variable
                cast(Callable[[], object], lambda node=node: _cluster_ready(node)),
                "cluster_state:ok on every node",
            )
        yield ",".join(f"{HOST}:{port}" for port in PORTS)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass(frozen=True)
class ClusterStack:
    """The repo copy and environment that select the Redis Cluster profile."""

    env: dict[str, str]
    repo: Path
    profile: Path


@pytest.fixture(scope="module")
def cluster_stack(
    stack: Stack, cluster_nodes: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ClusterStack]:
    """`nba features` through the profile: registry in a fresh PostgreSQL database, features
    materialised into the cluster."""
    folder = tmp_path_factory.mktemp("cluster-repo")
    with scratch_databases("rcluster") as (registry_db,):
        env = {
            **production_feature_env(
                stack,
                folder,
                registry_db,
                {"NBA_REDIS_CLUSTER_NODES": cluster_nodes},
                "redis-cluster.yaml",
            ),
            "NBA_DECISION_LOG_PATH": str(folder / "decision_log.db"),
            "NBA_MODEL_POLL_SECONDS": "0",
            "NBA_CATALOG_RELOAD_SECONDS": "0",
        }
        output = run_cli(["features"], env, stack.root)
        assert "Deploying infrastructure for customer_activity" in output
        repo = Path(env["NBA_FEATURE_REPO"])
        yield ClusterStack(env, repo, Path(env["NBA_FEATURE_STORE_YAML"]))


def test_materialisation_spreads_customers_over_every_shard(cluster_stack: ClusterStack) -> None:
    per_node = {port: cast(int, redis.Redis(host=HOST, port=port).dbsize()) for port in PORTS}
    print(f"\nredis cluster: keys per master {per_node}")
    assert all(count > 300 for count in per_node.values()), per_node
    assert sum(per_node.values()) >= 1500  # one hash per customer


def test_cluster_reads_equal_the_sqlite_reads(
    cluster_stack: ClusterStack, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("NBA_FEAST_REGISTRY_URL", "NBA_REDIS_CLUSTER_NODES"):
        monkeypatch.setenv(key, cluster_stack.env[key])
    on_cluster = OnlineFeatures(
        cluster_stack.repo, SERVICES, cluster_stack.profile, timeout_seconds=0.25
    )
    store = on_cluster._store  # the read timeout reaches every node of the cluster
    # the profile's online store is Feast's Redis store (typed as the base OnlineStore)
    online_store = cast(RedisOnlineStore, store._get_provider().online_store)
    client = online_store._get_client(store.config.online_store)
    assert isinstance(client, RedisCluster)
    nodes = client.get_nodes()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
    pools = [n.redis_connection.connection_pool for n in nodes]
    assert len(pools) == len(PORTS)
    assert all(p.connection_kwargs["socket_timeout"] == 0.25 for p in pools)
    on_sqlite = OnlineFeatures(stack.feature_repo, SERVICES)
    for customer in ("C0000001", "C0000420", "C0001499"):
        assert on_cluster.read(customer) == on_sqlite.read(customer)
    assert on_cluster.read("nobody") is None


@pytest.fixture(scope="module")
def api(
    cluster_stack: ClusterStack, stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    folder = tmp_path_factory.mktemp("cluster-service")
    env = {**cluster_stack.env, "NBA_MODEL_CACHE_DIR": str(folder / "models")}
    with (
        running_service(env, stack.root, folder / "service.log") as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        yield client


def _decide(api: httpx.Client, customer: str) -> dict[str, object]:
    response = api.post(
        "/v1/decisions", json={"customer_id": customer, "touchpoint": "call_center"}
    )
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_the_service_decides_from_the_cluster(api: httpx.Client) -> None:
    body = _decide(api, "C0000042")
    assert body["personalised"] is True
    assert body["reasons"], "personalised answers carry reasons from the customer's features"
    assert body["degraded"] == []
    unknown = _decide(api, "C9999999")
    assert unknown["personalised"] is False


def test_consent_update_and_erasure_through_the_cluster(api: httpx.Client) -> None:
    customer = "C0000077"
    path = f"/admin/customers/{customer}"
    withdrawn = api.put(f"{path}/consent", json={"marketing": [], "profiling": False})
    assert withdrawn.status_code == 200, withdrawn.text
    body = _decide(api, customer)
    assert body["personalised"] is False
    assert all(a["type"] != "offer" for a in body["ranked"])  # type: ignore[attr-defined]
    restored = api.put(f"{path}/consent", json={"marketing": ["call_center"], "profiling": True})
    assert restored.status_code == 200
    assert _decide(api, customer)["personalised"] is True

    erased = api.delete(path)
    assert erased.status_code == 200, erased.text
    assert erased.json()["feature_views_cleared"] == [
        "customer_activity",
        "customer_consent",
        "customer_profile",
    ]
    after = _decide(api, customer)
    assert after["personalised"] is False
    assert UNKNOWN_CUSTOMER_NOTICE in after["notices"]  # type: ignore[operator]
    assert api.delete(path).json()["feature_views_cleared"] == []
