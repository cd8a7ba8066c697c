"""The bulk Redis materialisation engine writes what Feast's own engine writes, byte for
byte, on a real Redis (databases 8 and 9)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import redis
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.protos.feast.types.Value_pb2 import Value
from feast.types import Bool, Float32, Float64, Int64, String
from google.protobuf.timestamp_pb2 import Timestamp

from tests.integration.servers import REDIS_HOST, REDIS_PORT, flushed_redis
from training import redis_engine
from training.redis_engine import (
    ENGINE_TYPE,
    latest_row_per_entity,
    string_key_layout,
    timestamp_protos,
    varints,
)

pytestmark = pytest.mark.integration

FEAST_DB, OURS_DB = 8, 9  # database indexes kept for this test
END = datetime(2026, 10, 1, tzinfo=UTC)
CUSTOMERS = 3_000
CHUNK_ROWS = 1_000  # the engine writes in chunks of this many rows here


def _world(folder: Path) -> list[object]:
    """Two views over crafted data: nulls, NaN, negatives, strings, repeated customers."""
    rng = np.random.default_rng(3)
    ids = [f"cust-{i:06d}" for i in range(CUSTOMERS)] + ["ü-ñ-long-" + "x" * 300]
    n = len(ids)
    seconds = rng.integers(0, 300 * 86_400, n)
    micros = rng.integers(0, 1_000_000, n) * (rng.random(n) < 0.7)  # some whole seconds
    times = pd.Series(END - pd.to_timedelta(seconds, "s") - pd.to_timedelta(micros, "us"))
    times = times.astype("datetime64[us, UTC]")
    amount = rng.normal(0, 1e4, n).astype(np.float32)
    amount[rng.random(n) < 0.05] = np.nan
    wide = pd.DataFrame(
        {
            "customer_id": ids,
            "event_timestamp": times,
            "amount": amount,
            "ratio": rng.random(n),
            "count": pd.array(rng.integers(-3, 2**40, n), dtype="Int64"),
            "flag": rng.random(n) < 0.5,
            "segment": rng.choice(["gold", "silver", "", "日本"], n),
        }
    )
    wide.loc[rng.random(n) < 0.03, "count"] = pd.NA
    # Older rows of some customers: Feast's de-duplication keeps the latest.
    older = wide.sample(frac=0.2, random_state=1).assign(
        event_timestamp=lambda d: d.event_timestamp - timedelta(days=3), ratio=-1.0
    )
    pd.concat([wide, older]).to_parquet(folder / "wide.parquet")
    few = pd.DataFrame(
        {
            "customer_id": ids[:500],
            "event_timestamp": pd.Series(
                [END - timedelta(hours=i) for i in range(500)], dtype="datetime64[us, UTC]"
            ),
            "level": rng.integers(0, 5, 500),
            "score": np.round(rng.random(500), 1).astype(np.float32),  # few distinct
        }
    )
    few.to_parquet(folder / "few.parquet")
    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)

    def source(name: str) -> FileSource:
        return FileSource(
            name=name, path=str(folder / f"{name}.parquet"), timestamp_field="event_timestamp"
        )

    return [
        customer,
        FeatureView(
            name="wide",
            entities=[customer],
            ttl=timedelta(days=400),
            schema=[
                Field(name="amount", dtype=Float32),
                Field(name="ratio", dtype=Float64),
                Field(name="count", dtype=Int64),
                Field(name="flag", dtype=Bool),
                Field(name="segment", dtype=String),
            ],
            source=source("wide"),
        ),
        FeatureView(
            name="few",
            entities=[customer],
            ttl=timedelta(days=30),
            schema=[Field(name="level", dtype=Int64), Field(name="score", dtype=Float32)],
            source=source("few"),
        ),
    ]


def _store(
    folder: Path, db: int, engine: str | None, ttl: int | None, skip_dedup: bool = False
) -> FeatureStore:
    folder.mkdir()
    lines = [
        "project: engine_check",
        "provider: local",
        "registry: registry.db",
        "online_store:",
        "  type: redis",
        f"  connection_string: {REDIS_HOST}:{REDIS_PORT},db={db}",
        *([f"  key_ttl_seconds: {ttl}"] if ttl else []),
        *(["  skip_dedup: true"] if skip_dedup else []),
        "offline_store:",
        "  type: duckdb",
        "entity_key_serialization_version: 3",
        *([f"batch_engine: {engine}"] if engine else []),
    ]
    (folder / "feature_store.yaml").write_text("\n".join(lines) + "\n")
    store = FeatureStore(repo_path=str(folder))
    store.apply(_world(folder))  # type: ignore[arg-type]
    return store


def _contents(client: redis.Redis) -> dict[bytes, dict[bytes, bytes]]:
    # a synchronous client: HGETALL answers a dict, not an awaitable
    return {
        key: cast(dict[bytes, bytes], client.hgetall(key)) for key in client.scan_iter(count=5_000)
    }


@pytest.fixture(params=[None, 3600], ids=["no-key-ttl", "key-ttl"])
def stores(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[FeatureStore, FeatureStore, redis.Redis, redis.Redis]]:
    ttl = request.param
    with flushed_redis(FEAST_DB) as feast_client, flushed_redis(OURS_DB) as ours_client:
        yield (
            _store(tmp_path / "feast", FEAST_DB, None, ttl),
            _store(tmp_path / "ours", OURS_DB, ENGINE_TYPE, ttl),
            feast_client,
            ours_client,
        )


def test_the_engine_writes_feasts_layout_byte_for_byte_and_keeps_newer_stored_rows(
    stores: tuple[FeatureStore, FeatureStore, redis.Redis, redis.Redis],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(redis_engine, "CHUNK_ROWS", CHUNK_ROWS)
    deduplicated: list[int] = []  # rows in, per call of the engine's de-duplication

    def counted(ids: pa.ChunkedArray, stamps: pa.ChunkedArray) -> np.ndarray:
        deduplicated.append(len(ids))
        return latest_row_per_entity(ids, stamps)

    monkeypatch.setattr(redis_engine, "latest_row_per_entity", counted)
    feast_store, our_store, feast_client, ours_client = stores
    caplog.set_level(logging.INFO, logger="training.redis_engine")
    # A later window first, then an earlier one: the second write must keep newer rows.
    windows = [
        (END - timedelta(days=10), END),
        (END - timedelta(days=400), END - timedelta(days=5)),
    ]
    for start, end in windows:
        for store in (feast_store, our_store):
            store.materialize(start_date=start, end_date=end)
        assert _contents(ours_client) == _contents(feast_client)
    writes = [r for r in caplog.records if "rows written to Redis" in r.getMessage()]
    written = [r.getMessage() for r in writes]
    assert len(written) == 4, "the bulk writer wrote both views in both windows"
    # the engine's writes log from named threads
    assert {cast(str, r.threadName).rsplit("_", 1)[0] for r in writes} == {"materialise"}, (
        "Feast handed both views to the engine at once, which wrote them in its threads"
    )
    assert len(deduplicated) == 4, "the engine's de-duplication ran, not Feast's"
    assert any("kept" in m and " 0 kept" not in m for m in written), "newer rows were kept"
    assert ours_client.dbsize() == CUSTOMERS + 1
    feast_ttls = {cast(int, feast_client.ttl(k)) > 0 for k in feast_client.scan_iter(count=5_000)}
    our_ttls = {cast(int, ours_client.ttl(k)) > 0 for k in ours_client.scan_iter(count=5_000)}
    assert our_ttls == feast_ttls
    assert len(our_ttls) == 1


@pytest.mark.parametrize("skip_dedup", [False, True], ids=["HGET-fails", "HSET-fails"])
def test_a_failed_redis_command_fails_the_materialisation_and_leaves_a_usable_pool(
    tmp_path: Path, skip_dedup: bool
) -> None:
    layout = string_key_layout("engine_check", "customer_id", 3)
    assert layout is not None, "Feast's string keys are head + length + value + tail"
    head, tail = layout
    customer = b"cust-000042"
    bad_key = head + len(customer).to_bytes(4, "little") + customer + tail
    with flushed_redis(OURS_DB) as client:
        store = _store(tmp_path / "ours", OURS_DB, ENGINE_TYPE, None, skip_dedup)
        client.set(bad_key, b"not a hash")  # HGET and HSET on it answer WRONGTYPE
        with pytest.raises(redis.ResponseError, match=r"1 of \d+ Redis commands failed: WRONGTYPE"):
            store.materialize(start_date=END - timedelta(days=400), end_date=END)
        client.delete(bad_key)
        store.materialize(start_date=END - timedelta(days=400), end_date=END)
        assert client.dbsize() == CUSTOMERS + 1
        assert client.type(bad_key) == b"hash"


def test_varints_and_timestamps_match_protobuf() -> None:
    values = np.array([0, 1, 127, 128, 300, 2**31, 2**63 - 1, -1, -(2**63)], dtype=np.int64)
    expected = [Value(int64_val=int(v)).SerializeToString()[1:] for v in values]
    assert varints(values).to_pylist() == expected
    micros = np.array([0, 1, 999_999, 1_700_000_000_123_456, -1], dtype=np.int64)
    stamps = []
    for m in micros:
        stamp = Timestamp()
        stamp.FromMicroseconds(int(m))
        stamps.append(stamp.SerializeToString())
    assert timestamp_protos(micros).to_pylist() == stamps


def test_latest_row_per_entity_takes_each_entitys_latest_row_across_chunks() -> None:
    ids = pa.chunked_array([["b", "a", "b"], ["c", "a", "b", "a"]])
    micros = [5, 1, 9, 2, 7, 9, 3]  # b's latest time twice: its first such row wins
    stamps = pa.chunked_array(
        [
            pa.array(micros[:3], pa.timestamp("us", "UTC")),
            pa.array(micros[3:], pa.timestamp("us", "UTC")),
        ]
    )
    rows = latest_row_per_entity(ids, stamps)
    assert rows.tolist() == [2, 4, 3]  # b, a, c: the order entities first appear
