"""Prediction metrics with bootstrap confidence intervals, overall and per slice."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from sklearn.metrics import log_loss, roc_auc_score

Metric = Callable[[np.ndarray, np.ndarray], float]


def expected_calibration_error(
    outcomes: np.ndarray, predicted: np.ndarray, bins: int = 10
) -> float:
    """Mean |observed rate - mean prediction| over equal-count bins, weighted by bin size."""
    if len(outcomes) == 0:
        return float("nan")
    order = np.argsort(predicted)
    error = 0.0
    for chunk in np.array_split(order, min(bins, len(order))):
        if len(chunk):
            error += len(chunk) * abs(outcomes[chunk].mean() - predicted[chunk].mean())
    return error / len(outcomes)


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


CLASSIFICATION: dict[str, Metric] = {
    "auc": _auc,
    "log_loss": lambda y, p: float(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1])),
    "brier": lambda y, p: float(np.mean((p - y) ** 2)),
    "calibration_error": expected_calibration_error,
}


def bootstrap_interval(
    statistic: Callable[..., float],
    arrays: tuple[np.ndarray, ...],
    rng: np.random.Generator,
    resamples: int = 200,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of `statistic(*arrays)` over bootstrap resamples of their rows."""
    n = len(arrays[0])
    values = []
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        values.append(statistic(*(a[idx] for a in arrays)))
    finite = np.array([v for v in values if np.isfinite(v)])
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    return float(np.percentile(finite, tail)), float(np.percentile(finite, 100 - tail))


def classification_report(
    outcomes: np.ndarray,
    predicted: np.ndarray,
    slices: Mapping[str, np.ndarray],
    rng: np.random.Generator,
    resamples: int = 200,
) -> dict[str, float]:
    """AUC, log loss, Brier and calibration error with 95 % intervals, overall and per slice.

    `slices` maps a slice name (e.g. 'touchpoint=web') to a boolean row mask. Keys of the
    result look like 'auc', 'auc_lo', 'auc_hi', 'touchpoint=web/auc'.
    """
    report: dict[str, float] = {}
    groups = {"": np.ones(len(outcomes), dtype=bool), **slices}
    for name, mask in groups.items():
        y, p = outcomes[mask], predicted[mask]
        prefix = f"{name}/" if name else ""
        for metric, fn in CLASSIFICATION.items():
            report[f"{prefix}{metric}"] = fn(y, p) if len(y) else float("nan")
            if len(y):
                # Slices get fewer resamples: they are many, and their intervals are wide anyway.
                lo, hi = bootstrap_interval(fn, (y, p), rng, resamples if not name else 50)
                report[f"{prefix}{metric}_lo"], report[f"{prefix}{metric}_hi"] = lo, hi
        report[f"{prefix}rows"] = float(mask.sum())
    return report
