"""The local PostgreSQL and Redis servers of the integration tests.

A test that needs one skips with a clear message on a machine without it, and fails
under CI (`CI=true`), where the servers are part of the environment. Each test gets its
own databases (created here, dropped afterwards) and its own Redis database index.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest
import redis

from tests.conftest import Stack

POSTGRES = os.environ.get("NBA_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def unavailable(what: str, exc: Exception) -> NoReturn:
    """Fail under CI, skip elsewhere, saying which server is missing and why."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is required under CI and not reachable: {exc}")
    pytest.skip(f"{what} not reachable (start it, or set NBA_TEST_POSTGRES): {exc}")


def database_url(name: str) -> str:
    """The URL of database `name` on the test server."""
    return POSTGRES.rsplit("/", 1)[0] + f"/{name}"


@contextmanager
def scratch_databases(*prefixes: str) -> Iterator[list[str]]:
    """Fresh databases named `<prefix>_<random>` on the test server, dropped afterwards."""
    try:
        admin = psycopg.connect(POSTGRES, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL at {POSTGRES}", exc)
    suffix = uuid.uuid4().hex[:10]
    names = [f"{prefix}_{suffix}" for prefix in prefixes]
    try:
        for name in names:
            admin.execute(f'CREATE DATABASE "{name}"')
        yield names
    finally:
        for name in names:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextmanager
def flushed_redis(db: int) -> Iterator[redis.Redis]:
    """Redis database `db` of the local server, empty before and after."""
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
    try:
        client.flushdb()
    except redis.ConnectionError as exc:
        unavailable(f"Redis at {REDIS_HOST}:{REDIS_PORT}", exc)
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


def production_feature_env(
    stack: Stack,
    folder: Path,
    registry_db: str,
    online: dict[str, str],
    profile: str = "production.yaml",
) -> dict[str, str]:
    """The stack's environment on a feature-store profile of `feature_repo/profiles`: a copy
    of its feature repo in `folder`, the SQL registry in database `registry_db`, and the
    online store's settings `online` (NBA_REDIS_URL, NBA_REDIS_CLUSTER_NODES)."""
    repo = folder / "feature_repo"
    shutil.copytree(
        stack.feature_repo,
        repo,
        ignore=shutil.ignore_patterns("registry.db", "online_store.db", "__pycache__"),
    )
    host = POSTGRES.split("://", 1)[1].rsplit("/", 1)[0]
    return {
        **stack.env,
        "NBA_FEATURE_REPO": str(repo),
        "NBA_FEATURE_STORE_YAML": str(repo / "profiles" / profile),
        "NBA_FEAST_REGISTRY_URL": f"postgresql+psycopg://{host}/{registry_db}",
        **online,
    }


def redis_url(db: int) -> dict[str, str]:
    """The online-store setting for database `db` of the local Redis."""
    return {"NBA_REDIS_URL": f"{REDIS_HOST}:{REDIS_PORT},db={db}"}
