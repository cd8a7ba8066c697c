"""What the service builds once at start-up and shares with every request."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

from service.catalog_holder import CatalogHolder
from service.decision_log import DecisionLog, SqliteDecisionLog
from service.decision_log_postgres import PostgresDecisionLog
from service.engine import DecisionEngine
from service.errors import ModelLoadError
from service.feature_client import OnlineFeatures
from service.model import LoadedModel, load_registered_model
from service.model_directory import ModelDirectory
from service.settings import ServiceSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    """The catalog, feature reader, model, decision log and engine of a running service."""

    settings: ServiceSettings
    catalogs: CatalogHolder
    features: OnlineFeatures
    model: LoadedModel
    decision_log: DecisionLog
    engine: DecisionEngine
    models: ModelDirectory

    def close(self) -> None:
        """Stop background work and close the decision log."""
        self.catalogs.stop()
        self.decision_log.close()


def open_decision_log(settings: ServiceSettings) -> DecisionLog:
    """PostgreSQL when `decision_log_url` is set, else the SQLite file."""
    if settings.decision_log_url:
        return PostgresDecisionLog(settings.decision_log_url)
    return SqliteDecisionLog(settings.decision_log_path)


def build_runtime(settings: ServiceSettings) -> Runtime:
    """Load features, model and catalog; check they fit together; open the decision log."""
    features = OnlineFeatures(
        settings.feature_repo,
        [settings.feature_service, settings.consent_feature_service],
        settings.feature_store_yaml,
    )
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
    catalogs = CatalogHolder(settings.catalog_path, set(features.columns))
    decision_log = open_decision_log(settings)
    engine = DecisionEngine(
        catalogs,
        model,
        features,
        decision_log,
        features.descriptions,
        rng=random.Random(settings.exploration_seed),
    )
    engine.warm_up()
    catalogs.watch(settings.catalog_reload_seconds)
    log.info(
        "serving %s version %s (@%s), %d actions in the catalog",
        model.name,
        model.version,
        model.alias,
        len(catalogs.current.catalog.actions),
    )
    models = ModelDirectory(settings.mlflow_tracking_uri, settings.model_name)
    return Runtime(settings, catalogs, features, model, decision_log, engine, models)
