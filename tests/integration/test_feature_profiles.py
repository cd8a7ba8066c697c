"""The production feature-store profile on the real local Redis and PostgreSQL."""

from __future__ import annotations

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

REDIS_DB = 11  # a database index kept for this test


@pytest.fixture
def production_env(stack: Stack, tmp_path: Path) -> Iterator[dict[str, str]]:
    with flushed_redis(REDIS_DB), scratch_databases("feast_registry") as (registry_db,):
        yield production_feature_env(stack, tmp_path, registry_db, redis_url(REDIS_DB))


def test_production_profile_materialises_into_redis(
    production_env: dict[str, str], stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = run_cli(["features"], production_env, stack.root)
    assert "Applying changes for project nba" in output
    assert "Deploying infrastructure for customer_activity" in output  # Redis, not SQLite
    assert cast(int, redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB).dbsize()) > 1000
    for key in ("NBA_FEAST_REGISTRY_URL", "NBA_REDIS_URL"):
        monkeypatch.setenv(key, production_env[key])
    services = ["nba_model_features", "nba_consent"]
    on_redis = OnlineFeatures(
        Path(production_env["NBA_FEATURE_REPO"]),
        services,
        Path(production_env["NBA_FEATURE_STORE_YAML"]),
    )
    on_sqlite = OnlineFeatures(stack.feature_repo, services)
    for customer in ("C0000001", "C0000420", "C0001499"):
        assert on_redis.read(customer) == on_sqlite.read(customer)
    assert on_redis.read("nobody") is None
