"""Value-weighted arbitration: expected value = propensity x value x lever - cost.

Must-do actions (priority above 0) win whenever they pass the rules, higher priority
first; otherwise the highest expected value wins if it beats the threshold, else nothing.
"""

from __future__ import annotations

import numpy as np


def expected_values(propensities: np.ndarray, values: np.ndarray, costs: np.ndarray) -> np.ndarray:
    """Expected business value of showing each action (levers already in `propensities`)."""
    return np.asarray(propensities * values - costs, dtype=np.float64)


NO_ACTION_KEY = (0, 0, float("inf"))  # after every qualifying action, before the rest


def rank_key(expected: float, priority: int, threshold: float) -> tuple[int, int, float]:
    """Sort key (descending) of one eligible action; `winners` is its vectorised argmax."""
    qualifies = expected > threshold or priority > 0
    return (int(qualifies), priority if qualifies else 0, expected)


def winners(
    expected: np.ndarray, priorities: np.ndarray, eligible: np.ndarray, threshold: float
) -> np.ndarray:
    """Column of the winning action per row of (m, c) expected values; c means no_action.

    `priorities` is (c,), `eligible` an (m, c) boolean mask of actions that passed the rules.
    """
    m, c = expected.shape
    if c == 0:
        return np.zeros(m, dtype=np.int64)
    qualifies = eligible & ((expected > threshold) | (priorities > 0))
    tier = np.where(qualifies, priorities, -1)
    in_top_tier = qualifies & (tier == tier.max(axis=1, keepdims=True))
    best = np.where(in_top_tier, expected, -np.inf).argmax(axis=1)
    return np.asarray(np.where(in_top_tier.any(axis=1), best, c), dtype=np.int64)
