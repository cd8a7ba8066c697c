"""Online feature reads from Feast, with one `FeatureStore` built at start-up and reused."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from feast import FeatureService, FeatureStore
from feast.infra.online_stores.redis import RedisOnlineStore
from redis import Redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from service.breaker import CircuitBreaker
from service.errors import FeatureStoreError
from service.metrics import FEATURE_READ_SECONDS
from service.online_erasure import erase_entity
from service.redis_features import redis_hash_reader

log = logging.getLogger(__name__)


def open_feature_store(repo_path: Path, yaml_file: Path | None = None) -> FeatureStore:
    """The Feast store of a repo, configured by its own feature_store.yaml or by a profile."""
    if yaml_file is None:
        return FeatureStore(repo_path=str(repo_path))
    return FeatureStore(repo_path=str(repo_path), fs_yaml_file=yaml_file)


def bound_redis_client(store: FeatureStore, timeout_seconds: float) -> None:
    """Make a Redis online store fail within `timeout_seconds` instead of retrying for seconds.

    redis-py retries a failed command three times with a backoff of up to 10 s, and Feast's
    connection string cannot pass a retry policy: while Redis is down, each read would hold
    a decision thread (or the event loop: `service.placement`) for seconds. Reads get one
    immediate retry (a dropped connection is reopened at once) and socket timeouts unless
    the connection string sets its own.
    """
    online_store = store._get_provider().online_store  # private: no public accessor
    if not isinstance(online_store, RedisOnlineStore):
        return
    client = online_store._get_client(store.config.online_store)
    client.set_retry(Retry(NoBackoff(), 1))
    for options in _connection_options(client):
        options.setdefault("socket_timeout", timeout_seconds)
        options.setdefault("socket_connect_timeout", timeout_seconds)
        if options["socket_timeout"] is None:
            options["socket_timeout"] = timeout_seconds
        if options["socket_connect_timeout"] is None:
            options["socket_connect_timeout"] = timeout_seconds


def _connection_options(client: Redis | RedisCluster) -> list[dict[str, Any]]:
    """The options new connections are opened with: the pool's, or on a Redis Cluster
    (`redis_type: redis_cluster`) those of every known node's pool and of nodes found later."""
    if isinstance(client, RedisCluster):
        nodes = client.nodes_manager
        pools = [
            n.redis_connection.connection_pool
            for n in nodes.nodes_cache.values()
            if n.redis_connection is not None
        ]
        return [nodes.connection_kwargs, *(pool.connection_kwargs for pool in pools)]
    return [client.connection_pool.connection_kwargs]


def feature_service_columns(store: FeatureStore, service_name: str) -> list[str]:
    """Names of the features a Feast feature service returns, in registry order."""
    service: FeatureService = store.get_feature_service(service_name)
    return [f.name for projection in service.feature_view_projections for f in projection.features]


class OnlineFeatures:
    """Reads everything the engine needs about one customer in one call: one HMGET of
    Feast's Redis hash on Redis (`service.redis_features`), `get_online_features` elsewhere.

    `service_names` are Feast feature services (the model's features, then the consent flags);
    their features are read together, by reference, in a single call. A customer is unknown
    when the first service has none of its features for them. After a failed read, reads fail
    fast for a second (`breaker`) so that an outage costs no waiting.
    """

    def __init__(
        self,
        repo_path: Path,
        service_names: Sequence[str],
        yaml_file: Path | None = None,
        timeout_seconds: float = 0.5,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        try:
            self._store = open_feature_store(repo_path, yaml_file)
            services = [self._store.get_feature_service(name) for name in service_names]
            bound_redis_client(self._store, timeout_seconds)
        except Exception as exc:  # Feast raises many types for a missing or broken repo
            raise FeatureStoreError(
                f"cannot open feature services {list(service_names)} in {repo_path}: {exc}"
            ) from exc
        self.breaker = breaker or CircuitBreaker("feature_store", FeatureStoreError)
        self._refs: list[str] = []
        self.columns: list[str] = []
        self.descriptions: dict[str, str] = {}
        self.views: dict[str, str] = {}  # feature name -> feature view name
        self._known_by: list[str] = []  # the first service's features: a customer has some
        for position, service in enumerate(services):
            for projection in service.feature_view_projections:
                for field in projection.features:
                    if field.name in self.descriptions:
                        continue
                    view = projection.name_alias or projection.name
                    self._refs.append(f"{view}:{field.name}")
                    self.columns.append(field.name)
                    self.descriptions[field.name] = field.description
                    self.views[field.name] = projection.name
                    if position == 0:
                        self._known_by.append(field.name)
        # on Redis, one HMGET instead of get_online_features (service/redis_features.py)
        self._direct = redis_hash_reader(self._store, [(self.views[c], c) for c in self.columns])

    @property
    def direct(self) -> bool:
        """Reads go straight to Feast's Redis hash instead of through `get_online_features`."""
        return self._direct is not None

    def read(self, customer_id: str) -> dict[str, Any] | None:
        """The customer's feature values, or None when the store knows no such customer.

        Raises FeatureStoreError when the store cannot be read (at once while failing fast).
        """
        self.breaker.check()
        started = time.perf_counter()
        try:
            if self._direct is not None:
                values = dict(zip(self.columns, self._direct.read(customer_id), strict=True))
            else:
                response = self._store.get_online_features(
                    features=self._refs, entity_rows=[{"customer_id": customer_id}]
                ).to_dict()
                values = {name: response[name][0] for name in self.columns}
        except Exception as exc:
            reason = f"online feature read failed: {type(exc).__name__}: {exc}"
            self.breaker.failure(reason)
            raise FeatureStoreError(reason) from exc
        self.breaker.success()
        FEATURE_READ_SECONDS.observe(time.perf_counter() - started)
        if all(values[name] is None for name in self._known_by):
            return None  # consent written for an unknown ID does not make the customer known
        return values

    def write(self, view: str, customer_id: str, values: Mapping[str, Any], at: datetime) -> None:
        """Write one customer's row of `view` straight into the online store."""
        frame = pd.DataFrame([{"customer_id": customer_id, **values, "event_timestamp": at}])
        try:
            self._store.write_to_online_store(view, frame)
        except Exception as exc:
            raise FeatureStoreError(f"online feature write to {view} failed: {exc}") from exc

    def erase(self, customer_id: str) -> list[str]:
        """Delete the customer's rows of every feature view this service reads from the online
        store; the names of the views that held one (sorted)."""
        try:
            views = [
                self._store.get_feature_view(name) for name in sorted(set(self.views.values()))
            ]
            return erase_entity(self._store, views, customer_id)
        except FeatureStoreError:
            raise
        except Exception as exc:
            raise FeatureStoreError(f"online erasure failed: {type(exc).__name__}: {exc}") from exc
