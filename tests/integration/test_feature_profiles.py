"""The production feature-store profile on the real local Redis and PostgreSQL."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from service.feature_client import OnlineFeatures
from tests.conftest import Stack, run_cli

pytestmark = pytest.mark.integration

POSTGRES = os.environ.get("NBA_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_HOST, REDIS_PORT, REDIS_DB = "127.0.0.1", 6379, 11  # a database index kept for tests


def _unavailable(what: str, exc: Exception) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is required under CI and not reachable: {exc}")
    pytest.skip(f"{what} not reachable, production-profile test skipped: {exc}")


@pytest.fixture
def production_env(stack: Stack, tmp_path: Path) -> Iterator[dict[str, str]]:
    try:
        admin = psycopg.connect(POSTGRES, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        _unavailable("PostgreSQL", exc)
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB)
    try:
        client.flushdb()
    except redis.ConnectionError as exc:
        _unavailable("Redis", exc)
    name = f"feast_registry_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    repo = tmp_path / "feature_repo"
    shutil.copytree(
        stack.feature_repo,
        repo,
        ignore=shutil.ignore_patterns("registry.db", "online_store.db", "__pycache__"),
    )
    host = POSTGRES.split("://", 1)[1].rsplit("/", 1)[0]
    env = {
        **stack.env,
        "NBA_FEATURE_REPO": str(repo),
        "NBA_FEATURE_STORE_YAML": str(repo / "profiles" / "production.yaml"),
        "NBA_FEAST_REGISTRY_URL": f"postgresql+psycopg://{host}/{name}",
        "NBA_REDIS_URL": f"{REDIS_HOST}:{REDIS_PORT},db={REDIS_DB}",
    }
    try:
        yield env
    finally:
        client.flushdb()
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


def test_production_profile_materialises_into_redis(
    production_env: dict[str, str], stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = run_cli(["features"], production_env, stack.root)
    assert "Applying changes for project nba" in output
    assert "Deploying infrastructure for customer_activity" in output  # Redis, not SQLite
    assert redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB).dbsize() > 1000
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
