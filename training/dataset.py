"""Training sets: logged decisions joined point-in-time with Feast features, split by time."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from service.catalog import Catalog
from service.features import FeatureSpec, customer_matrix_from_frame, featurize
from training.feature_store import historical_features

DECISION_COLUMNS = (
    "decision_id",
    "customer_id",
    "event_timestamp",
    "touchpoint",
    "action_id",
    "propensity",
    "outcome",
)


@dataclass(frozen=True)
class TimeSplit:
    """Row masks of a split by decision time; every training row is older than every holdout row."""

    train: np.ndarray
    valid: np.ndarray
    holdout: np.ndarray
    valid_start: pd.Timestamp
    holdout_start: pd.Timestamp


def load_decisions(path: Path) -> pd.DataFrame:
    """Read the decision log and check it has what training needs."""
    if not path.exists():
        raise FileNotFoundError(f"no decision log at {path}: run `nba simulate` first")
    decisions = pd.read_parquet(path)
    missing = [c for c in DECISION_COLUMNS if c not in decisions.columns]
    if missing:
        raise ValueError(f"decision log {path} lacks columns {missing}")
    return decisions.sort_values("event_timestamp", kind="stable").reset_index(drop=True)


def join_features(repo_path: Path, decisions: pd.DataFrame, feature_service: str) -> pd.DataFrame:
    """Each decision with the customer's features as they were when it was made."""
    return historical_features(repo_path, decisions, feature_service)


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
    types = [catalog.by_id(a).type.value for a in frame["action_id"]]
    return featurize(
        spec,
        customer_matrix_from_frame(spec, frame),
        frame["action_id"].tolist(),
        types,
        frame["touchpoint"].tolist(),
    )
