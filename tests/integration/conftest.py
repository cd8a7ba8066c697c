"""One real service process for all HTTP tests, and the customers' current state to pick from."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest

from service.settings import DEFAULT_CATALOG
from tests.conftest import Stack
from training.serving import running_service


@dataclass(frozen=True)
class Service:
    """The running API, its catalog file (tests may edit it) and its log file."""

    client: httpx.Client
    catalog_path: Path
    log_path: Path


@pytest.fixture(scope="session")
def service(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("service")
    catalog_path = folder / "catalog.yaml"
    shutil.copy(DEFAULT_CATALOG, catalog_path)
    env = {
        **stack.env,
        "NBA_CATALOG_PATH": str(catalog_path),
        "NBA_CATALOG_RELOAD_SECONDS": "0.2",
        "NBA_EXPLORATION_SEED": "1",
    }
    log_path = folder / "service.log"
    with (
        running_service(env, stack.root, log_path) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        yield Service(client, catalog_path, log_path)


@pytest.fixture(scope="session")
def api(service: Service) -> httpx.Client:
    return service.client


@pytest.fixture(scope="session")
def customers(stack: Stack) -> pd.DataFrame:
    """Every customer's latest features and consent, as materialised into the online store."""
    data = stack.feature_repo / "data"
    activity = pd.read_parquet(data / "customer_activity.parquet")
    latest = activity.sort_values("event_timestamp").groupby("customer_id").tail(1)
    profile = pd.read_parquet(data / "customer_profile.parquet").drop(columns="event_timestamp")
    consent = pd.read_parquet(data / "customer_consent.parquet").drop(columns="event_timestamp")
    frame = latest.drop(columns="event_timestamp").merge(profile, on="customer_id")
    return frame.merge(consent, on="customer_id").set_index("customer_id").sort_index()


class CustomerPicker:
    """Hands out customers matching a condition, each one only once across the session."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.used: set[str] = set()

    def pick(self, query: str) -> str:
        for customer_id in self.frame.query(query).index:
            if customer_id not in self.used:
                self.used.add(customer_id)
                return str(customer_id)
        raise AssertionError(f"no unused customer matches {query!r}")


@pytest.fixture(scope="session")
def picker(customers: pd.DataFrame) -> CustomerPicker:
    return CustomerPicker(customers)
