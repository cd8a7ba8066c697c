"""What the service builds once at start-up and shares with every request."""

from __future__ import annotations

import logging
import math
import os
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from service.catalog_holder import CatalogHolder
from service.decision_log import SqliteDecisionLog
from service.decision_log_postgres import PostgresDecisionLog
from service.engine import DecisionEngine
from service.feature_client import OnlineFeatures
from service.log_guard import GuardedDecisionLog
from service.model import ModelRegistry
from service.model_directory import ModelDirectory
from service.placement import DecisionPlacement
from service.served_models import Routing, ServedModels, start_models
from service.settings import ServiceSettings

log = logging.getLogger(__name__)

# Decisions waiting on a read or a log write at once, per worker, while they run on threads
# (`service.placement`; anyio's default pool size); threads start as needed.
DECISION_THREADS = 40


@dataclass(frozen=True)
class Runtime:
    """The catalog, feature reader, models, decision log and engine of a running service."""

    settings: ServiceSettings
    catalogs: CatalogHolder
    features: OnlineFeatures
    models: ServedModels
    decision_log: GuardedDecisionLog
    engine: DecisionEngine
    directory: ModelDirectory
    placement: DecisionPlacement
    decision_threads: ThreadPoolExecutor

    def close(self) -> None:
        """Let decisions in progress on threads finish, stop background work, close the
        decision log (a decision on the event loop has finished before the lifespan ends)."""
        self.decision_threads.shutdown(wait=True)
        self.catalogs.stop()
        self.models.stop()
        self.decision_log.close()


def open_decision_log(settings: ServiceSettings) -> GuardedDecisionLog:
    """PostgreSQL when `decision_log_url` is set, else the SQLite file; behind a circuit
    breaker, so that an outage of the log costs no waiting."""
    if settings.decision_log_url:
        return GuardedDecisionLog(PostgresDecisionLog(settings.decision_log_url))
    return GuardedDecisionLog(SqliteDecisionLog(settings.decision_log_path))


def configure_mlflow_client(settings: ServiceSettings) -> None:
    """Bound how long a call to an MLflow tracking server may block, and keep progress bars
    out of the logs (MLflow reads these from the environment): an unreachable registry must
    not hold up start-up or a reload."""
    os.environ.setdefault(
        "MLFLOW_HTTP_REQUEST_TIMEOUT",
        str(max(1, math.ceil(settings.registry_timeout_seconds))),  # whole seconds
    )
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def build_runtime(settings: ServiceSettings) -> Runtime:
    """Load features, models and catalog; check they fit together; open the decision log."""
    configure_mlflow_client(settings)
    features = OnlineFeatures(
        settings.feature_repo,
        [settings.feature_service, settings.consent_feature_service],
        settings.feature_store_yaml,
        timeout_seconds=settings.feature_read_timeout_seconds,
    )
    registry = ModelRegistry(
        settings.mlflow_tracking_uri, settings.model_name, settings.model_cache_dir
    )
    routing = Routing(settings.challenger_mode, settings.challenger_share, settings.routing_salt)
    models = start_models(registry, routing, features.columns)
    catalogs = CatalogHolder(settings.catalog_path, set(features.columns))
    decision_log = open_decision_log(settings)
    engine = DecisionEngine(
        catalogs,
        models,
        features,
        decision_log,
        features.descriptions,
        rng=random.Random(settings.exploration_seed),
    )
    engine.warm_up()
    catalogs.watch(settings.catalog_reload_seconds)
    models.watch(settings.model_poll_seconds)
    champion = models.current.champion
    log.info(
        "serving %s version %s (%s), %d actions in the catalog, challenger %s",
        champion.name,
        champion.version,
        models.status.source,
        len(catalogs.current.catalog.actions),
        settings.challenger_mode.value,
    )
    directory = ModelDirectory(settings.mlflow_tracking_uri, settings.model_name)
    placement = DecisionPlacement([features.breaker, decision_log.breaker])
    threads = ThreadPoolExecutor(DECISION_THREADS, thread_name_prefix="decide")
    return Runtime(
        settings, catalogs, features, models, decision_log, engine, directory, placement, threads
    )
