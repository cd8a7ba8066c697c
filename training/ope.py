"""Off-policy estimators of a target policy's value from logged decisions.

Inputs per logged decision i: the reward r_i (EUR) of the logged action, its logging
propensity p_i, the probability pi_i that the target policy picks that same action (1 or 0
for a deterministic policy), the reward model's expected value of the target policy
(q_target_i) and of the logged action (q_logged_i). Weights are w_i = pi_i / p_i.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """A policy value estimate with its effective sample size."""

    value: float
    effective_sample_size: float


def _weights(target: np.ndarray, propensity: np.ndarray) -> np.ndarray:
    if np.any((propensity <= 0) | (propensity > 1)):
        raise ValueError("propensities must lie in (0, 1]")
    return np.asarray(target.astype(np.float64) / propensity, dtype=np.float64)


def effective_sample_size(weights: np.ndarray) -> float:
    """(sum w)^2 / sum w^2: how many on-policy samples the weighted sample is worth."""
    total = float(np.sum(weights**2))
    return float(np.sum(weights) ** 2 / total) if total > 0 else 0.0


def ips(reward: np.ndarray, propensity: np.ndarray, target: np.ndarray) -> Estimate:
    """Inverse propensity scoring: mean(w * r). Unbiased, high variance."""
    w = _weights(target, propensity)
    return Estimate(float(np.mean(w * reward)), effective_sample_size(w))


def snips(reward: np.ndarray, propensity: np.ndarray, target: np.ndarray) -> Estimate:
    """Self-normalised IPS: sum(w * r) / sum(w). Slightly biased, much lower variance."""
    w = _weights(target, propensity)
    total = float(np.sum(w))
    value = float(np.sum(w * reward) / total) if total > 0 else float("nan")
    return Estimate(value, effective_sample_size(w))


def doubly_robust(
    reward: np.ndarray,
    propensity: np.ndarray,
    target: np.ndarray,
    q_target: np.ndarray,
    q_logged: np.ndarray,
) -> Estimate:
    """Doubly robust: mean(q_target + w * (r - q_logged)); right if either part is right."""
    terms = doubly_robust_terms(reward, propensity, target, q_target, q_logged)
    return Estimate(float(np.mean(terms)), effective_sample_size(_weights(target, propensity)))


def doubly_robust_terms(
    reward: np.ndarray,
    propensity: np.ndarray,
    target: np.ndarray,
    q_target: np.ndarray,
    q_logged: np.ndarray,
) -> np.ndarray:
    """Each decision's term q_target + w * (r - q_logged): the estimate is their mean."""
    return np.asarray(q_target + _weights(target, propensity) * (reward - q_logged))
