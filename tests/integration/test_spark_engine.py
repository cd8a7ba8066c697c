"""Materialisation with Spark as Feast's batch engine (`profiles/production-spark.yaml`).

Needs the optional `spark` extra (`pip install -e '.[spark]'`: pyspark 4) and Java; skipped
without them. `nba features` materialises the test world through a local Spark session
into Redis (db 10), and the online reads must equal those of the default (local engine,
SQLite) store.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
import redis

from service.feature_client import OnlineFeatures
from tests.conftest import Stack, run_cli
from tests.integration.servers import (
    REDIS_HOST,
    REDIS_PORT,
    flushed_redis,
    production_feature_env,
    redis_url,
    scratch_databases,
)

pytestmark = pytest.mark.integration

REDIS_DB = 10  # a database index kept for this test
SERVICES = ["nba_model_features", "nba_consent"]

if importlib.util.find_spec("pyspark") is None:
    pytest.skip(
        "pyspark is not installed (pip install -e '.[spark]'): Spark engine test skipped",
        allow_module_level=True,
    )
if shutil.which("java") is None:
    pytest.skip("no java on PATH (pyspark needs Java 17+)", allow_module_level=True)


@pytest.fixture
def spark_env(stack: Stack, tmp_path: Path) -> Iterator[dict[str, str]]:
    with flushed_redis(REDIS_DB), scratch_databases("spark_registry") as (registry_db,):
        yield {
            **production_feature_env(
                stack, tmp_path, registry_db, redis_url(REDIS_DB), "production-spark.yaml"
            ),
            "PYSPARK_PYTHON": sys.executable,  # Spark's workers unpickle Feast code
        }


def test_spark_materialises_what_the_local_engine_does(
    spark_env: dict[str, str], stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_cli(["features"], spark_env, stack.root)
    assert cast(int, redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB).dbsize()) >= 1500
    for key in ("NBA_FEAST_REGISTRY_URL", "NBA_REDIS_URL"):
        monkeypatch.setenv(key, spark_env[key])
    on_spark = OnlineFeatures(
        Path(spark_env["NBA_FEATURE_REPO"]), SERVICES, Path(spark_env["NBA_FEATURE_STORE_YAML"])
    )
    on_local = OnlineFeatures(stack.feature_repo, SERVICES)
    for n in range(1, 1501, 37):
        customer = f"C{n:07d}"
        assert on_spark.read(customer) == on_local.read(customer), customer
