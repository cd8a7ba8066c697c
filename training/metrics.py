"""Prediction metrics with bootstrap confidence intervals, overall and per slice.

The metrics take rows sorted once by prediction (`Ranked`) and a multiplicity per row, so
a bootstrap resample is a vector of counts instead of a re-sorted copy of the data: every
resample costs O(n), not a sort, and the figures equal those of the copied resample.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

LOG_LOSS_CLIP = 1e-6
CALIBRATION_BINS = 10


@dataclass(frozen=True)
class Ranked:
    """Rows in ascending order of prediction, with what every resample's metrics reuse."""

    outcomes: np.ndarray
    predicted: np.ndarray
    tie_starts: np.ndarray | None  # first row of each group of equal predictions; None: no ties
    losses: np.ndarray  # binary cross-entropy per row
    squared_errors: np.ndarray

    @classmethod
    def of(cls, outcomes: np.ndarray, predicted: np.ndarray) -> Ranked:
        """Sort (stably) by prediction once."""
        order = np.argsort(predicted, kind="stable")
        p = np.asarray(predicted, dtype=np.float64)[order]
        y = np.asarray(outcomes, dtype=np.float64)[order]
        starts = np.flatnonzero(np.r_[True, p[1:] != p[:-1]]) if len(p) else np.zeros(0, int)
        clipped = np.clip(p, LOG_LOSS_CLIP, 1 - LOG_LOSS_CLIP)
        losses = -(y * np.log(clipped) + (1 - y) * np.log1p(-clipped))
        ties = starts if len(starts) < len(p) else None
        return cls(y, p, ties, losses, (p - y) ** 2)

    def __len__(self) -> int:
        return len(self.outcomes)


WeightedMetric = Callable[[Ranked, np.ndarray], float]  # (rows, multiplicity per row)


def auc(rows: Ranked, weight: np.ndarray) -> float:
    """Area under the ROC curve; tied predictions count one half (as scikit-learn's)."""
    positive = weight * rows.outcomes
    negative = weight - positive
    total_positive, total_negative = positive.sum(), negative.sum()
    if total_positive == 0 or total_negative == 0:
        return float("nan")
    if rows.tie_starts is not None:  # a group of equal predictions acts as one row
        positive = np.add.reduceat(positive, rows.tie_starts)
        negative = np.add.reduceat(negative, rows.tie_starts)
    below = np.cumsum(negative)
    below -= negative
    pairs = positive @ below + 0.5 * (positive @ negative)
    return float(pairs / (total_positive * total_negative))


def log_loss(rows: Ranked, weight: np.ndarray) -> float:
    """Mean binary cross-entropy, predictions clipped to [1e-6, 1 - 1e-6]."""
    return float(weight @ rows.losses / weight.sum())


def brier(rows: Ranked, weight: np.ndarray) -> float:
    """Mean squared difference of prediction and outcome."""
    return float(weight @ rows.squared_errors / weight.sum())


def calibration_error(rows: Ranked, weight: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Mean |observed rate - mean prediction| over equal-count bins, weighted by bin size.

    The bins cut the rows, each repeated `weight` times, in order of prediction; a row whose
    copies straddle a cut falls partly in each bin.
    """
    n = int(weight.sum())
    if n == 0:
        return float("nan")
    k = min(bins, n)
    sizes = np.full(k, n // k) + (np.arange(k) < n % k)  # as numpy.array_split
    cuts = np.cumsum(sizes)[:-1]  # inner cuts, in repeated rows
    ends = np.cumsum(weight)
    whole = np.searchsorted(ends, cuts, side="right")  # rows entirely before each cut
    straddling = cuts - np.where(whole > 0, ends[whole - 1], 0.0)  # copies before the cut
    difference = weight * (rows.outcomes - rows.predicted)
    before = np.cumsum(difference)
    at_cuts = np.where(whole > 0, before[whole - 1], 0.0)
    at_cuts += straddling * (rows.outcomes - rows.predicted)[whole]
    per_bin = np.diff(np.concatenate([[0.0], at_cuts, [before[-1]]]))
    return float(np.abs(per_bin).sum() / n)


def expected_calibration_error(
    outcomes: np.ndarray, predicted: np.ndarray, bins: int = CALIBRATION_BINS
) -> float:
    """Calibration error of unweighted rows (see `calibration_error`)."""
    rows = Ranked.of(outcomes, predicted)
    return calibration_error(rows, np.ones(len(rows)), bins)


CLASSIFICATION: dict[str, WeightedMetric] = {
    "auc": auc,
    "log_loss": log_loss,
    "brier": brier,
    "calibration_error": calibration_error,
}


def resample_counts(n: int, rng: np.random.Generator, resamples: int) -> Iterable[np.ndarray]:
    """How often each of `n` rows is drawn, per bootstrap resample of `n` draws."""
    for drawn in _draws(n, rng, resamples):
        yield np.bincount(drawn, minlength=n).astype(np.float64)


def percentile_interval(values: Iterable[float], level: float = 0.95) -> tuple[float, float]:
    """Central `level` interval of the finite values (NaN, NaN when there are none)."""
    finite = np.array([v for v in values if np.isfinite(v)])
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    return float(np.percentile(finite, tail)), float(np.percentile(finite, 100 - tail))


def bootstrap_interval(
    statistic: Callable[..., float],
    arrays: tuple[np.ndarray, ...],
    rng: np.random.Generator,
    resamples: int = 200,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of `statistic(*arrays)` over bootstrap resamples of their rows."""
    n = len(arrays[0])
    return percentile_interval(
        (statistic(*(a[idx] for a in arrays)) for idx in _draws(n, rng, resamples)), level
    )


def _draws(n: int, rng: np.random.Generator, resamples: int) -> Iterable[np.ndarray]:
    for _ in range(resamples):
        yield rng.integers(0, n, n)


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
        rows = Ranked.of(outcomes[mask], predicted[mask])
        prefix = f"{name}/" if name else ""
        report[f"{prefix}rows"] = float(len(rows))
        if not len(rows):
            report |= {f"{prefix}{metric}": float("nan") for metric in CLASSIFICATION}
            continue
        # Slices get fewer resamples: they are many, and their intervals are wide anyway.
        draws: dict[str, list[float]] = {metric: [] for metric in CLASSIFICATION}
        for weight in resample_counts(len(rows), rng, resamples if not name else 50):
            for metric, fn in CLASSIFICATION.items():
                draws[metric].append(fn(rows, weight))
        for metric, fn in CLASSIFICATION.items():
            report[f"{prefix}{metric}"] = fn(rows, np.ones(len(rows)))
            lo, hi = percentile_interval(draws[metric])
            report[f"{prefix}{metric}_lo"], report[f"{prefix}{metric}_hi"] = lo, hi
    return report
