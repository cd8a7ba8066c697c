"""Training sets: logged decisions with the customer's features at decision time, split by time."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from service.catalog import Catalog
from service.feature_client import feature_service_columns, open_feature_store
from service.features import FeatureSpec, customer_matrix_from_frame, featurize
from training.feature_store import historical_features
from training.logs import context_features, read_service_log, read_training_log
from training.settings import TrainingSettings


@dataclass(frozen=True)
class TimeSplit:
    """Row masks of a split by decision time; every training row is older than every holdout row."""

    train: np.ndarray
    valid: np.ndarray
    holdout: np.ndarray
    valid_start: pd.Timestamp
    holdout_start: pd.Timestamp


@dataclass(frozen=True)
class TrainingSet:
    """Decisions with features, the feature spec, and where the features came from."""

    frame: pd.DataFrame
    spec: FeatureSpec
    source: str  # "feast" (point-in-time join) or "inline" (imported context features)


def decision_history(settings: TrainingSettings) -> pd.DataFrame:
    """The training log plus everything the service has logged since, oldest first."""
    logged = read_training_log(settings.training_log)
    if context_features(logged):  # imported, with context features inline
        return logged.sort_values("event_timestamp", kind="stable").reset_index(drop=True)
    parts = [logged, read_service_log(settings)]
    frame = pd.concat([p for p in parts if len(p)], ignore_index=True)
    return frame.sort_values("event_timestamp", kind="stable").reset_index(drop=True)


def build_training_set(settings: TrainingSettings, catalog: Catalog) -> TrainingSet:
    """Join Feast features as they were at each decision, unless the log carries its own."""
    return join_features(settings, catalog, decision_history(settings))


def join_features(
    settings: TrainingSettings, catalog: Catalog, history: pd.DataFrame
) -> TrainingSet:
    """Decisions (all of them, or one partition) with their features at decision time."""
    extra = context_features(history)
    actions = tuple(a.id for a in catalog.actions)
    if extra:
        return TrainingSet(history, FeatureSpec(tuple(extra), actions), "inline")
    store = open_feature_store(settings.feature_repo, settings.feature_store_yaml)
    columns = tuple(feature_service_columns(store, settings.feature_service))
    frame = historical_features(
        settings.feature_repo, history, settings.feature_service, settings.feature_store_yaml
    )
    return TrainingSet(frame, FeatureSpec(columns, actions), "feast")


def time_split(
    frame: pd.DataFrame, holdout_fraction: float, valid_fraction: float = 0.1
) -> TimeSplit:
    """Split on decision time: train, then validation (early stopping), then holdout."""
    times = frame["event_timestamp"]
    holdout_start = times.quantile(1.0 - holdout_fraction)
    valid_start = times.quantile(1.0 - holdout_fraction - valid_fraction)
    holdout = (times >= holdout_start).to_numpy()
    valid = ((times >= valid_start) & ~holdout).to_numpy()
    train = ~(holdout | valid)
    if not (train.any() and valid.any() and holdout.any()):
        raise ValueError("too few decisions to split into train, validation and holdout")
    return TimeSplit(
        train, valid, holdout, pd.Timestamp(str(valid_start)), pd.Timestamp(str(holdout_start))
    )


def design_matrix(spec: FeatureSpec, frame: pd.DataFrame, catalog: Catalog) -> np.ndarray:
    """Model inputs for the logged (customer, action, touchpoint) of each decision."""
    types = frame["action_id"].map({a.id: a.type.value for a in catalog.actions})
    if types.isna().any():
        raise KeyError(f"action {frame['action_id'][types.isna()].iloc[0]!r} is not in the catalog")
    return featurize(
        spec,
        customer_matrix_from_frame(spec, frame),
        frame["action_id"].tolist(),
        types.tolist(),
        frame["touchpoint"].tolist(),
    )
