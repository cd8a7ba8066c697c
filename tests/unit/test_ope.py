import numpy as np
import pytest

from training.metrics import bootstrap_interval, expected_calibration_error
from training.ope import doubly_robust, effective_sample_size, ips, snips


def test_estimators_on_a_hand_computed_log() -> None:
    reward = np.array([10.0, 0.0, 5.0, 0.0])
    propensity = np.array([0.5, 0.5, 0.25, 1.0])
    target = np.array([1.0, 0.0, 1.0, 1.0])
    # weights 2, 0, 4, 1
    assert ips(reward, propensity, target).value == pytest.approx((20 + 0 + 20 + 0) / 4)
    assert snips(reward, propensity, target).value == pytest.approx(40 / 7)
    assert ips(reward, propensity, target).effective_sample_size == pytest.approx(49 / 21)
    q_target = np.array([8.0, 1.0, 4.0, 0.5])
    q_logged = np.array([8.0, 2.0, 4.0, 0.5])
    expected = np.mean(q_target + np.array([2, 0, 4, 1]) * (reward - q_logged))
    assert doubly_robust(reward, propensity, target, q_target, q_logged).value == pytest.approx(
        expected
    )


def test_on_policy_evaluation_recovers_the_logged_mean() -> None:
    rng = np.random.default_rng(0)
    reward = rng.normal(3.0, 1.0, 1000)
    propensity = np.ones(1000)
    estimate = snips(reward, propensity, np.ones(1000))
    assert estimate.value == pytest.approx(reward.mean())
    assert estimate.effective_sample_size == pytest.approx(1000)


def test_propensities_outside_the_unit_interval_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        ips(np.ones(2), np.array([0.5, 0.0]), np.ones(2))


def test_ips_is_unbiased_on_a_simulated_bandit() -> None:
    rng = np.random.default_rng(1)
    n, arms = 200_000, 4
    true_means = np.array([1.0, 2.0, 3.0, 4.0])
    logging = np.array([0.4, 0.3, 0.2, 0.1])
    logged = rng.choice(arms, size=n, p=logging)
    reward = rng.normal(true_means[logged], 1.0)
    target = (logged == 3).astype(float)  # always play arm 3
    q = np.zeros(n)
    for estimate in (
        ips(reward, logging[logged], target),
        snips(reward, logging[logged], target),
        doubly_robust(reward, logging[logged], target, q, q),
    ):
        assert estimate.value == pytest.approx(4.0, abs=0.1)
    assert effective_sample_size(target / logging[logged]) == pytest.approx(0.1 * n, rel=0.05)


def test_calibration_error_and_bootstrap() -> None:
    rng = np.random.default_rng(2)
    p = rng.uniform(0, 1, 20_000)
    y = (rng.uniform(0, 1, 20_000) < p).astype(float)
    assert expected_calibration_error(y, p) < 0.02
    assert expected_calibration_error(y, np.clip(p + 0.2, 0, 1)) > 0.1
    lo, hi = bootstrap_interval(lambda values: float(values.mean()), (y,), rng, 100)
    assert lo < y.mean() < hi and hi - lo < 0.03
