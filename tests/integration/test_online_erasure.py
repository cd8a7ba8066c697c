"""Online reads and customer erasure in both online stores we ship: SQLite and the real local
Redis (db 15)."""

from __future__ import annotations

import importlib.util
import os
import sqlite3
import struct
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from feast import Entity, FeatureService, FeatureStore, FeatureView
from redis.connection import Connection

from service.feature_client import OnlineFeatures, bound_redis_client
from service.redis_features import RedisHashReader, _string_key_prefix, redis_hash_reader
from tests.conftest import copy_feature_repo

pytestmark = pytest.mark.integration

REDIS_HOST, REDIS_PORT, REDIS_DB = "127.0.0.1", 6379, 15  # a database index kept for this test
SERVICES = ["nba_model_features", "nba_consent"]
VIEWS = ["customer_activity", "customer_consent", "customer_profile"]
ERASED, KEPT = "erase-me-7f3a", "keep-me-91c2"

STORE_YAML = """project: nba
provider: local
registry: data/registry.db
online_store:
{online}
offline_store:
  type: duckdb
entity_key_serialization_version: 3
"""
ONLINE = {
    "sqlite": "  type: sqlite\n  path: data/online_store.db",
    "redis": f"  type: redis\n  connection_string: {REDIS_HOST}:{REDIS_PORT},db={REDIS_DB}",
}


def _redis() -> redis.Redis:
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB)
    try:
        client.flushdb()
    except redis.ConnectionError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis is required under CI and not reachable: {exc}")
        pytest.skip(f"Redis not reachable, Redis erasure test skipped: {exc}")
    return client


def _apply(repo: Path) -> None:
    """`feast apply` of the repo's definitions, in process (no source data needed)."""
    spec = importlib.util.spec_from_file_location("erasure_definitions", repo / "definitions.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    kinds = (Entity, FeatureView, FeatureService)
    FeatureStore(repo_path=str(repo)).apply(
        [v for v in vars(module).values() if isinstance(v, kinds)]
    )


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def features(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, OnlineFeatures, Path]]:
    backend = str(request.param)
    client = _redis() if backend == "redis" else None
    repo = copy_feature_repo(tmp_path_factory.mktemp(backend))
    (repo / "feature_store.yaml").write_text(STORE_YAML.format(online=ONLINE[backend]))
    _apply(repo)
    yield backend, OnlineFeatures(repo, SERVICES), repo
    if client is not None:
        client.flushdb()


def _fill(features: OnlineFeatures, repo: Path, customer: str) -> dict[str, Any]:
    """Write a full row of every view for `customer`; the values a read returns."""
    store = FeatureStore(repo_path=str(repo))
    now = datetime.now(UTC)
    for view in VIEWS:
        values = {f.name: 7 for f in store.get_feature_view(view).features}
        features.write(view, customer, values, now)
    written = features.read(customer)
    assert written is not None and all(v is not None for v in written.values())
    return written


def _traces(backend: str, repo: Path, customer: str) -> int:
    """Places the raw ID still appears in the online store's storage."""
    needle = customer.encode()
    if backend == "redis":
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB)
        return sum(needle in key for key in client.scan_iter())
    path = repo / "data" / "online_store.db"
    with sqlite3.connect(path) as connection:
        tables = [
            r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        rows: int = sum(
            connection.execute(
                f'SELECT count(*) FROM "{t}" WHERE instr(entity_key, ?) > 0', (needle,)
            ).fetchone()[0]
            for t in tables
            if t.startswith("nba_")
        )
    return rows + path.read_bytes().count(needle)  # secure_delete: no copy in free space


def test_erasure_removes_the_customer_from_every_view_and_no_one_else(
    features: tuple[str, OnlineFeatures, Path],
) -> None:
    backend, online, repo = features
    _fill(online, repo, ERASED)
    kept = _fill(online, repo, KEPT)
    assert _traces(backend, repo, ERASED) > 0

    assert online.erase(ERASED) == VIEWS
    assert online.read(ERASED) is None, "an erased customer is unknown to the service"
    assert online.read(KEPT) == kept
    assert _traces(backend, repo, ERASED) == 0
    assert online.erase(ERASED) == [], "erasing again finds nothing"
    assert online.erase("never-seen") == []


def test_erasure_of_a_customer_with_consent_only_clears_that_view(
    features: tuple[str, OnlineFeatures, Path],
) -> None:
    _, online, _ = features
    customer = "consent-only-5d10"
    online.write(
        "customer_consent",
        customer,
        {"consent_profiling": 1}
        | {f"consent_marketing_{t}": 0 for t in ("web", "app", "call_center", "email", "store")},
        datetime.now(UTC),
    )
    assert online.erase(customer) == ["customer_consent"]
    assert online.erase(customer) == []


def test_reads_return_what_feast_returns_for_full_partial_and_unknown_customers(
    features: tuple[str, OnlineFeatures, Path],
) -> None:
    """On Redis the service reads Feast's hash directly (`service.redis_features`): every
    value must equal `get_online_features`'s, type included, missing ones too."""
    backend, online, repo = features
    assert online.direct == (backend == "redis")
    store = FeatureStore(repo_path=str(repo))
    now = datetime.now(UTC)
    for position, view in enumerate(VIEWS):
        fields = store.get_feature_view(view).features
        values = {
            f.name: (i + 0.1 * position if f.dtype.to_value_type().name == "FLOAT" else i)
            for i, f in enumerate(fields, start=3)
        }
        online.write(view, "full-0c11", values, now)
    consent = {f.name: 1 for f in store.get_feature_view("customer_consent").features}
    online.write("customer_consent", "partial-77e2", consent, now)  # one view of three
    pairs = [(online.views[c], c) for c in online.columns]
    reader = redis_hash_reader(store, pairs)
    assert (reader is not None) == (backend == "redis")
    for customer in ("full-0c11", "partial-77e2", "unknown-3b9d"):
        response = store.get_online_features(
            features=[f"{v}:{c}" for v, c in pairs], entity_rows=[{"customer_id": customer}]
        ).to_dict()
        expected = [response[c][0] for c in online.columns]
        if reader is not None:
            direct = reader.read(customer)
            assert direct == expected
            assert [type(v) for v in direct] == [type(v) for v in expected]
        if customer == "full-0c11":
            assert online.read(customer) == dict(zip(online.columns, expected, strict=True))
            assert None not in expected
        else:
            assert online.read(customer) is None  # no model feature: unknown to the service


@pytest.fixture
def direct_reader(features: tuple[str, OnlineFeatures, Path]) -> RedisHashReader:
    """A direct reader of the service's features on Redis, with the service's client
    settings (`bound_redis_client`: socket timeouts, one immediate retry)."""
    _, online, repo = features
    store = FeatureStore(repo_path=str(repo))
    bound_redis_client(store, 0.5)
    reader = redis_hash_reader(store, [(online.views[c], c) for c in online.columns])
    assert reader is not None
    return reader


def _held_connection(reader: RedisHashReader) -> Connection:
    """The connection the calling thread keeps for its reads (after one read)."""
    return cast(Connection, reader._local.held.connection)


@pytest.mark.parametrize("features", ["redis"], indirect=True)  # the direct read is Redis's
def test_a_read_after_redis_dropped_the_connection_reconnects_at_once(
    features: tuple[str, OnlineFeatures, Path], direct_reader: RedisHashReader
) -> None:
    """The direct read sends its own packed HMGET on a connection its thread keeps: a
    connection the server closed (a Redis restart, an idle timeout) is reopened by the one
    immediate retry, and the read answers as before."""
    _, online, repo = features
    written = list(_fill(online, repo, "reconnect-5d21").values())
    assert direct_reader.read("reconnect-5d21") == written
    sock = _held_connection(direct_reader)._sock
    assert sock is not None
    host, port = sock.getsockname()[:2]
    admin = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB)
    assert admin.client_kill(f"{host}:{port}"), "the server closed the reader's connection"
    assert direct_reader.read("reconnect-5d21") == written
    assert direct_reader.read("unknown-3b9d") == [None] * len(online.columns)


@pytest.mark.parametrize("features", ["redis"], indirect=True)
def test_a_thread_that_ends_gives_its_connection_back_to_the_pool(
    direct_reader: RedisHashReader,
) -> None:
    """Threads that come and go (anyio's workers behind the decision explorer) must not
    leave a checked-out connection behind."""
    pool = direct_reader._pool
    assert pool is not None
    direct_reader.read("C0000001")  # this thread keeps one
    in_use, available = len(pool._in_use_connections), len(pool._available_connections)
    threads = [threading.Thread(target=direct_reader.read, args=("C0000001",)) for _ in range(3)]
    for thread in threads:
        thread.start()
        thread.join()
    assert len(pool._in_use_connections) == in_use
    assert len(pool._available_connections) > available, "the threads' connections are reusable"


@pytest.mark.parametrize("features", ["redis"], indirect=True)
def test_the_key_from_the_checked_prefix_is_feasts_key(direct_reader: RedisHashReader) -> None:
    """The direct read builds the hash key from a prefix found with Feast's `_redis_key`;
    it must be Feast's key for every ID, and a layout it does not recognise falls back."""
    assert direct_reader._key_prefix is not None
    for customer in ("C0000042", "", "x" * 300, "kunde-ñ-東京-🙂", "with space;and:colons"):
        assert direct_reader._key(customer) == direct_reader._feast_key(customer)
    assert _string_key_prefix(lambda entity: b"v9:" + entity.encode(), "nba") is None

    def ascii_only(entity: str) -> bytes:  # the layout holds for the first probe only
        value = entity.encode()
        return b"k" + struct.pack("<I", len(value)) + value + b"nba" if entity.isascii() else b""

    assert ascii_only("C0000042").startswith(b"k")
    assert _string_key_prefix(ascii_only, "nba") is None
