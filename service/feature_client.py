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

from service.errors import FeatureStoreError
from service.metrics import FEATURE_READ_SECONDS

log = logging.getLogger(__name__)


def open_feature_store(repo_path: Path, yaml_file: Path | None = None) -> FeatureStore:
    """The Feast store of a repo, configured by its own feature_store.yaml or by a profile."""
    if yaml_file is None:
        return FeatureStore(repo_path=str(repo_path))
    return FeatureStore(repo_path=str(repo_path), fs_yaml_file=yaml_file)


def feature_service_columns(store: FeatureStore, service_name: str) -> list[str]:
    """Names of the features a Feast feature service returns, in registry order."""
    service: FeatureService = store.get_feature_service(service_name)
    return [f.name for projection in service.feature_view_projections for f in projection.features]


class OnlineFeatures:
    """Reads everything the engine needs about one customer in one `get_online_features` call.

    `service_names` are Feast feature services (the model's features, then the consent flags);
    their features are read together, by reference, in a single call. A customer is unknown
    when the first service has none of its features for them.
    """

    def __init__(
        self, repo_path: Path, service_names: Sequence[str], yaml_file: Path | None = None
    ) -> None:
        try:
            self._store = open_feature_store(repo_path, yaml_file)
            services = [self._store.get_feature_service(name) for name in service_names]
        except Exception as exc:  # Feast raises many types for a missing or broken repo
            raise FeatureStoreError(
                f"cannot open feature services {list(service_names)} in {repo_path}: {exc}"
            ) from exc
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

    def read(self, customer_id: str) -> dict[str, Any] | None:
        """The customer's feature values, or None when the store knows no such customer."""
        started = time.perf_counter()
        try:
            response = self._store.get_online_features(
                features=self._refs, entity_rows=[{"customer_id": customer_id}]
            ).to_dict()
        except Exception as exc:
            raise FeatureStoreError(f"online feature read failed: {exc}") from exc
        FEATURE_READ_SECONDS.observe(time.perf_counter() - started)
        values = {name: response[name][0] for name in self.columns}
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
