"""The two model families compared at every training run.

- binary: LightGBM with a binary objective and no re-weighting; its scores are propensities.
- ranker: LightGBM's XE-NDCG ranking objective (`rank_xendcg`) over each customer's logged
  decisions, with an isotonic calibration map from ranking score to acceptance probability,
  fitted on the validation window. The map travels with the model (metadata) and the
  service applies it.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression

from service.calibration import Calibration
from service.features import FeatureSpec

EARLY_STOPPING_ROUNDS = 30  # rounds without a better validation loss before a fit stops


def binary_params(seed: int) -> dict[str, object]:
    """Binary objective without class re-weighting, so scores stay calibrated propensities."""
    return {
        "objective": "binary",
        "learning_rate": 0.1,
        "num_leaves": 31,
        "min_data_in_leaf": 40,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.9,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "cat_smooth": 10,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "verbose": -1,
    }


def ranker_params(seed: int) -> dict[str, object]:
    """XE-NDCG ranking on binary labels, grouped by customer.

    LightGBM documents `rank_xendcg` as faster than `lambdarank` with similar results. In a
    one-off comparison on 1M logged decisions (a script, not in the repo) it fitted in 5.6 s
    instead of 8.2 s, with validation NDCG@1 0.837 against 0.836.
    """
    return {
        **binary_params(seed),
        "objective": "rank_xendcg",
        "metric": "ndcg",
        "eval_at": [1, 3],
        "bagging_freq": 0,
        "bagging_fraction": 1.0,
    }


def fit_binary(
    spec: FeatureSpec,
    train: tuple[np.ndarray, np.ndarray],
    valid: tuple[np.ndarray, np.ndarray],
    seed: int,
    rounds: int,
) -> lgb.Booster:
    """Binary propensity model with early stopping on the validation window."""
    train_set = lgb.Dataset(
        train[0],
        train[1],
        feature_name=spec.feature_names,
        categorical_feature=spec.categorical_features,
        free_raw_data=False,
    )
    valid_set = lgb.Dataset(valid[0], valid[1], reference=train_set)
    return lgb.train(
        binary_params(seed),
        train_set,
        num_boost_round=rounds,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
    )


def _grouped(
    matrix: np.ndarray, labels: np.ndarray, groups: pd.Series
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.argsort(groups.to_numpy(), kind="stable")
    sizes = (
        groups.iloc[order]
        .value_counts(sort=False)
        .reindex(pd.unique(groups.iloc[order]))
        .to_numpy()
    )
    return matrix[order], labels[order], sizes


def fit_ranker(
    spec: FeatureSpec,
    train: tuple[np.ndarray, np.ndarray, pd.Series],
    valid: tuple[np.ndarray, np.ndarray, pd.Series],
    seed: int,
    rounds: int,
) -> lgb.Booster:
    """Ranking over each customer's decisions (a group per customer)."""
    x, y, sizes = _grouped(*train)
    vx, vy, vsizes = _grouped(*valid)
    train_set = lgb.Dataset(
        x,
        y,
        group=sizes,
        feature_name=spec.feature_names,
        categorical_feature=spec.categorical_features,
        free_raw_data=False,
    )
    valid_set = lgb.Dataset(vx, vy, group=vsizes, reference=train_set)
    return lgb.train(
        ranker_params(seed),
        train_set,
        num_boost_round=rounds,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
    )


def fit_calibration(scores: np.ndarray, outcomes: np.ndarray, points: int = 200) -> Calibration:
    """Isotonic regression of outcomes on scores, kept as at most `points` knots."""
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(scores, outcomes)
    x = np.asarray(iso.X_thresholds_)
    y = np.asarray(iso.y_thresholds_)
    if len(x) > points:
        keep = np.unique(np.linspace(0, len(x) - 1, points).round().astype(int))
        x, y = x[keep], y[keep]
    return Calibration(tuple(float(v) for v in x), tuple(float(v) for v in y))
