"""The bootstrap metrics: weighted rows sorted once must equal scikit-learn on copied rows."""

import numpy as np
import pytest
from sklearn.metrics import log_loss as sklearn_log_loss
from sklearn.metrics import roc_auc_score

from training.metrics import (
    Ranked,
    auc,
    brier,
    calibration_error,
    classification_report,
    expected_calibration_error,
    log_loss,
)
from training.policies import memoised


def _copied_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """The definition: equal-count bins of the rows in order of prediction."""
    order = np.argsort(p, kind="stable")
    error = sum(
        len(chunk) * abs(y[chunk].mean() - p[chunk].mean())
        for chunk in np.array_split(order, min(bins, len(order)))
    )
    return float(error / len(y))


@pytest.mark.parametrize("n", [2, 7, 1000, 20_000])
@pytest.mark.parametrize("decimals", [None, 2])  # 2: many tied predictions
def test_weighted_metrics_equal_the_metrics_of_the_resampled_rows(
    n: int, decimals: int | None
) -> None:
    rng = np.random.default_rng(n)
    p = rng.uniform(0, 1, n)
    p = np.round(p, decimals) if decimals else p
    y = (rng.uniform(0, 1, n) < p).astype(float)
    y[:2] = [0.0, 1.0]  # both classes
    drawn = rng.integers(0, n, n)
    drawn[:2] = [0, 1]
    rows = Ranked.of(y, p)
    weight = np.bincount(drawn, minlength=n).astype(float)[np.argsort(p, kind="stable")]
    y_copy, p_copy = y[drawn], p[drawn]
    assert auc(rows, weight) == pytest.approx(roc_auc_score(y_copy, p_copy), abs=1e-12)
    assert log_loss(rows, weight) == pytest.approx(
        sklearn_log_loss(y_copy, np.clip(p_copy, 1e-6, 1 - 1e-6), labels=[0, 1]), abs=1e-12
    )
    assert brier(rows, weight) == pytest.approx(np.mean((p_copy - y_copy) ** 2), abs=1e-12)
    if decimals is None:  # with ties, the copies' order inside a tie decides the bins
        expected = _copied_calibration_error(y_copy, p_copy)
        assert calibration_error(rows, weight) == pytest.approx(expected, abs=1e-12)
    assert expected_calibration_error(y, p) == pytest.approx(
        _copied_calibration_error(y, p), abs=1e-12
    )


def test_auc_is_undefined_with_one_class_and_zero_weight_rows_do_not_count() -> None:
    rows = Ranked.of(np.array([1.0, 1.0, 0.0]), np.array([0.9, 0.2, 0.5]))
    # sorted: 0.2 (accepted), 0.5 (not), 0.9 (accepted)
    assert np.isnan(auc(rows, np.array([1.0, 0.0, 1.0])))  # only accepted rows remain
    assert auc(rows, np.array([0.0, 1.0, 1.0])) == 1.0
    assert auc(rows, np.array([1.0, 1.0, 0.0])) == 0.0


def test_report_intervals_bracket_the_estimates_and_slices_are_separate() -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(0.05, 0.6, 5000)
    y = (rng.uniform(0, 1, 5000) < p).astype(float)
    web = np.arange(5000) < 1000
    report = classification_report(y, p, {"web": web}, rng, resamples=100)
    for metric in ("auc", "log_loss", "brier", "calibration_error"):
        assert report[f"{metric}_lo"] <= report[metric] <= report[f"{metric}_hi"]
    assert report["rows"] == 5000 and report["web/rows"] == 1000
    assert report["web/auc"] == pytest.approx(roc_auc_score(y[web], p[web]))
    assert report["web/auc_hi"] - report["web/auc_lo"] > report["auc_hi"] - report["auc_lo"]


def test_memoised_scores_each_matrix_once() -> None:
    calls: list[int] = []

    def scorer(matrix: np.ndarray) -> np.ndarray:
        calls.append(len(matrix))
        sums: np.ndarray = matrix.sum(axis=1)
        return sums

    score = memoised(scorer)
    first, second = np.ones((3, 2)), np.ones((4, 2))
    assert score(first).tolist() == [2.0, 2.0, 2.0]
    score(first)
    score(second)
    assert calls == [3, 4]
