"""Value-weighted arbitration: expected value = propensity x value - cost."""

from __future__ import annotations

import numpy as np


def expected_values(propensities: np.ndarray, values: np.ndarray, costs: np.ndarray) -> np.ndarray:
    """Expected business value of showing each action."""
    return np.asarray(propensities * values - costs, dtype=np.float64)


def best_index(expected: np.ndarray, threshold: float = 0.0) -> int | None:
    """Index of the action to show, or None when nothing beats the threshold ('no action')."""
    if expected.size == 0:
        return None
    best = int(np.argmax(expected))
    return best if expected[best] > threshold else None
