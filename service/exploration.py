"""Exploration: sometimes show another eligible action, and know exactly how likely each was."""

from __future__ import annotations

import random

import numpy as np

from service.catalog import Exploration, ExplorationMethod


def selection_probabilities(
    expected_values: np.ndarray, greedy: int, settings: Exploration
) -> np.ndarray:
    """Probability of showing each option of the pool; `greedy` is the arbitration winner.

    epsilon_greedy: (1 - epsilon) on the winner plus epsilon spread evenly over the pool.
    softmax: proportional to exp(expected value / temperature), the winner included.
    none: the winner with probability 1.
    """
    n = len(expected_values)
    if n == 1 or settings.method is ExplorationMethod.NONE:
        probabilities = np.zeros(n)
        probabilities[greedy] = 1.0
        return probabilities
    if settings.method is ExplorationMethod.EPSILON_GREEDY:
        probabilities = np.full(n, settings.epsilon / n)
        probabilities[greedy] += 1.0 - settings.epsilon
        return probabilities
    scaled = (expected_values - expected_values.max()) / settings.temperature
    weights = np.exp(scaled)
    return np.asarray(weights / weights.sum(), dtype=np.float64)


def draw(probabilities: np.ndarray, rng: random.Random) -> int:
    """Pick an index with the given probabilities."""
    u = rng.random()
    cumulative = np.cumsum(probabilities)
    index = int(np.searchsorted(cumulative, u, side="right"))
    return min(index, len(probabilities) - 1)
