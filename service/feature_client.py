"""Online feature reads from Feast, with one `FeatureStore` built at start-up and reused."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from feast import FeatureService, FeatureStore

from service.errors import FeatureStoreError

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

    `service_names` are Feast feature services (the model's features and the consent flags);
    their features are read together, by reference, in a single call.
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
        for service in services:
            for projection in service.feature_view_projections:
                for field in projection.features:
                    if field.name in self.descriptions:
                        continue
                    view = projection.name_alias or projection.name
                    self._refs.append(f"{view}:{field.name}")
                    self.columns.append(field.name)
                    self.descriptions[field.name] = field.description

    def read(self, customer_id: str) -> dict[str, Any] | None:
        """The customer's feature values, or None when the store knows no such customer."""
        try:
            response = self._store.get_online_features(
                features=self._refs, entity_rows=[{"customer_id": customer_id}]
            ).to_dict()
        except Exception as exc:
            raise FeatureStoreError(f"online feature read failed: {exc}") from exc
        values = {name: response[name][0] for name in self.columns}
        if all(value is None for value in values.values()):
            return None
        return values
