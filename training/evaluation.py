"""Holdout evaluation: prediction quality, and on simulated data the true value of each policy."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss, ndcg_score, roc_auc_score

from service.arbitration import expected_values
from service.catalog import Catalog
from service.features import FeatureSpec, customer_matrix_from_frame, featurize
from service.vocabulary import Touchpoint
from training.response import accept_probability, legacy_choice_scores, logging_probabilities

Scorer = Callable[[np.ndarray], np.ndarray]
POLICIES = ("learned", "logging", "rules", "random", "oracle")


def classification_metrics(outcomes: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """AUC, log loss and Brier score of predicted acceptance against logged outcomes."""
    clipped = np.clip(predicted, 1e-6, 1 - 1e-6)
    return {
        "auc": float(roc_auc_score(outcomes, predicted)),
        "log_loss": float(log_loss(outcomes, clipped, labels=[0, 1])),
        "brier": float(np.mean((predicted - outcomes) ** 2)),
    }


def simulated_policy_values(
    holdout: pd.DataFrame,
    latent: pd.DataFrame,
    catalog: Catalog,
    spec: FeatureSpec,
    score: Scorer,
    exploration: float,
    threshold: float = 0.0,
    ndcg_k: int = 5,
) -> dict[str, float]:
    """True expected value per decision of each policy on the holdout contexts.

    For every holdout decision all candidates at its touchpoint are scored; the learned
    policy shows the action of highest predicted expected value (nothing when none beats
    `threshold`). The simulator's hidden response model gives the true value of every
    choice, so the learned policy is compared with the logging policy, the legacy rules,
    uniform random and the oracle. Also reports top-1 agreement with the oracle and
    NDCG@k of the learned ranking against the true expected values.
    """
    states = holdout.merge(latent, on="customer_id", how="left")
    totals = {f"{p}_value": 0.0 for p in POLICIES} | {f"{p}_acceptance": 0.0 for p in POLICIES}
    top1 = ndcg = 0.0
    for touchpoint in Touchpoint:
        rows = states[states["touchpoint"] == touchpoint.value].reset_index(drop=True)
        if rows.empty:
            continue
        candidates = catalog.candidates(touchpoint)
        m, c = len(rows), len(candidates)
        ids = [a.id for a in candidates] * m
        types = [a.type.value for a in candidates] * m
        matrix = featurize(
            spec,
            np.repeat(customer_matrix_from_frame(spec, rows), c, axis=0),
            ids,
            types,
            [touchpoint.value] * (m * c),
        )
        predicted = score(matrix).reshape(m, c)
        truth = accept_probability(
            rows.loc[rows.index.repeat(c)].reset_index(drop=True),
            np.array(ids),
            np.full(m * c, touchpoint.value),
            catalog,
        ).reshape(m, c)
        values = np.array([a.value for a in candidates])
        costs = np.array([a.cost for a in candidates])
        ev_pred = expected_values(predicted, values, costs)
        ev_true = expected_values(truth, values, costs)

        learned = ev_pred.argmax(axis=1)
        shows = ev_pred[np.arange(m), learned] > threshold
        oracle = ev_true.argmax(axis=1)
        oracle_shows = ev_true[np.arange(m), oracle] > 0
        rules = legacy_choice_scores(rows, candidates).argmax(axis=1)
        logging_p = logging_probabilities(rows, candidates, exploration)
        at = np.arange(m)
        choices = {
            "learned": (
                np.where(shows, ev_true[at, learned], 0.0),
                np.where(shows, truth[at, learned], 0.0),
            ),
            "oracle": (
                np.where(oracle_shows, ev_true[at, oracle], 0.0),
                np.where(oracle_shows, truth[at, oracle], 0.0),
            ),
            "rules": (ev_true[at, rules], truth[at, rules]),
            "logging": ((logging_p * ev_true).sum(axis=1), (logging_p * truth).sum(axis=1)),
            "random": (ev_true.mean(axis=1), truth.mean(axis=1)),
        }
        for policy, (value, acceptance) in choices.items():
            totals[f"{policy}_value"] += float(value.sum())
            totals[f"{policy}_acceptance"] += float(acceptance.sum())
        agree = np.where(shows & oracle_shows, learned == oracle, shows == oracle_shows)
        top1 += float(agree.sum())
        k = min(ndcg_k, c)
        ndcg += ndcg_score(np.clip(ev_true, 0, None), ev_pred, k=k) * m
    n = len(states)
    report = {key: value / n for key, value in totals.items()}
    report["top1_oracle_agreement"] = top1 / n
    report[f"ndcg_at_{ndcg_k}"] = ndcg / n
    report["regret_vs_oracle"] = report["oracle_value"] - report["learned_value"]
    return report
