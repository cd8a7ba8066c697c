"""A small real model, in-memory features, a real SQLite decision log and a settable clock."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from service.catalog import Catalog
from service.catalog_holder import CatalogVersion
from service.decision_log import DecisionLog, SqliteDecisionLog
from service.engine import DecisionEngine
from service.features import FeatureSpec, featurize
from service.model import LoadedModel
from service.rules import CONSENT_FEATURES
from service.served_models import ModelSet, ServedModels
from service.vocabulary import ActionType
from training.simulator import PRODUCT_COLUMNS

ALL_CONSENT = dict.fromkeys(CONSENT_FEATURES, 1)
CALM_CUSTOMER: dict[str, Any] = {
    **dict.fromkeys(PRODUCT_COLUMNS, 0),
    "open_complaints": 0,
    "balance_trend_90d": 0.0,
    "age": 40,
    "travel_transactions_90d": 2,
    "tenure_months": 60,
    "app_sessions_30d": 5,
    **ALL_CONSENT,
}
DESCRIPTIONS = {
    "open_complaints": "Complaints not yet resolved",
    "age": "Age of the customer in years",
}


def train_model(catalog: Catalog) -> LoadedModel:
    """With a complaint only resolve_complaint is accepted; younger customers accept more."""
    spec = FeatureSpec(
        customer_features=("open_complaints", "age"), actions=tuple(a.id for a in catalog.actions)
    )
    rng = np.random.default_rng(0)
    actions = [a for a in catalog.actions if a.type is not ActionType.NO_ACTION]
    n = 8000
    picked = rng.integers(0, len(actions), n)
    complaint = rng.integers(0, 2, n).astype(float)
    age = rng.integers(18, 90, n).astype(float)
    ids = [actions[i].id for i in picked]
    matrix = featurize(
        spec,
        np.column_stack([complaint, age]),
        ids,
        [actions[i].type.value for i in picked],
        ["web"] * n,
    )
    is_fix = np.array([i == "resolve_complaint" for i in ids])
    base = np.where(age < 40, 0.3, 0.1)
    p = np.where(is_fix, np.where(complaint == 1, 0.8, 0.01), np.where(complaint == 1, 0.01, base))
    labels = (rng.random(n) < p).astype(float)
    booster = lgb.train(
        {
            "objective": "binary",
            "verbose": -1,
            "min_data_in_leaf": 20,
            "deterministic": True,
            "seed": 1,
        },
        lgb.Dataset(
            matrix,
            labels,
            feature_name=spec.feature_names,
            categorical_feature=spec.categorical_features,
        ),
        num_boost_round=60,
    )
    return LoadedModel(booster=booster, spec=spec, name="test", version="1", alias="champion")


class DictFeatures:
    def __init__(self, rows: dict[str, dict[str, Any]]) -> None:
        self.rows = rows

    def read(self, customer_id: str) -> dict[str, Any] | None:
        return self.rows.get(customer_id)


@dataclass
class FixedCatalog:
    current: CatalogVersion


@dataclass
class Clock:
    now: float = 1_790_000_000.0  # 2026-09-21

    def __call__(self) -> float:
        return self.now

    def advance(self, days: float) -> None:
        self.now += days * 86_400


@dataclass
class Kit:
    engine: DecisionEngine
    log: DecisionLog
    clock: Clock
    features: DictFeatures
    catalog: FixedCatalog = field(repr=False)


def make_kit(
    catalog: Catalog,
    model: LoadedModel,
    db: Path,
    customers: dict[str, dict[str, Any]],
    seed: int = 0,
    log: DecisionLog | None = None,
    models: ServedModels | None = None,
) -> Kit:
    clock = Clock()
    features = DictFeatures(customers)
    source = FixedCatalog(CatalogVersion.of(catalog))
    log = log or SqliteDecisionLog(db)
    engine = DecisionEngine(
        source,
        models or ServedModels(ModelSet(model)),
        features,
        log,
        DESCRIPTIONS,
        rng=random.Random(seed),
        clock=clock,
    )
    return Kit(engine, log, clock, features, source)
