"""Online feature reads from Feast, with one `FeatureStore` built at start-up and reused."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from feast import FeatureService, FeatureStore

from service.errors import FeatureStoreError

log = logging.getLogger(__name__)


def feature_service_columns(store: FeatureStore, service_name: str) -> list[str]:
    """Names of the features a Feast feature service returns, in registry order."""
    service: FeatureService = store.get_feature_service(service_name)
    return [f.name for projection in service.feature_view_projections for f in projection.features]


class OnlineFeatures:
    """Reads one customer's features with a single `get_online_features` call."""

    def __init__(self, repo_path: Path, service_name: str) -> None:
        try:
            self._store = FeatureStore(repo_path=str(repo_path))
            self._service = self._store.get_feature_service(service_name)
            self.columns = feature_service_columns(self._store, service_name)
        except Exception as exc:  # Feast raises many types for a missing or broken repo
            raise FeatureStoreError(
                f"cannot open feature service '{service_name}' in {repo_path}: {exc}"
            ) from exc

    def read(self, customer_id: str) -> dict[str, Any] | None:
        """The customer's feature values, or None when the store knows no such customer."""
        try:
            response = self._store.get_online_features(
                features=self._service, entity_rows=[{"customer_id": customer_id}]
            ).to_dict()
        except Exception as exc:
            raise FeatureStoreError(f"online feature read failed: {exc}") from exc
        values = {name: response[name][0] for name in self.columns}
        if all(value is None for value in values.values()):
            return None
        return values
