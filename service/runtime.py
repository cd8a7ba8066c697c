"""What the service builds once at start-up and shares with every request."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from service.catalog import Catalog, load_catalog
from service.engine import DecisionEngine
from service.errors import ModelLoadError
from service.feature_client import OnlineFeatures
from service.model import LoadedModel, load_registered_model
from service.settings import ServiceSettings
from service.vocabulary import Touchpoint

log = logging.getLogger(__name__)

WARMUP_CUSTOMER = "__warmup__"


@dataclass(frozen=True)
class Runtime:
    """The catalog, feature reader, model and engine of a running service."""

    settings: ServiceSettings
    catalog: Catalog
    features: OnlineFeatures
    model: LoadedModel
    engine: DecisionEngine


def build_runtime(settings: ServiceSettings) -> Runtime:
    """Load catalog, Feast store and model; check they fit together; warm the hot path up."""
    catalog = load_catalog(settings.catalog_path)
    features = OnlineFeatures(settings.feature_repo, settings.feature_service)
    model = load_registered_model(
        settings.mlflow_tracking_uri,
        settings.model_name,
        settings.model_alias,
        settings.model_cache_dir,
    )
    missing = set(model.spec.customer_features) - set(features.columns)
    if missing:
        raise ModelLoadError(
            f"model {model.name} version {model.version} needs features {sorted(missing)} that "
            f"feature service '{settings.feature_service}' does not serve"
        )
    engine = DecisionEngine(catalog, model, features, settings.no_action_threshold)
    for touchpoint in Touchpoint:
        engine.decide(WARMUP_CUSTOMER, touchpoint)
    log.info(
        "serving %s version %s (@%s), %d actions in the catalog",
        model.name,
        model.version,
        model.alias,
        len(catalog.actions),
    )
    return Runtime(settings, catalog, features, model, engine)
