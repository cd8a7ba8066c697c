import random

import numpy as np
import pytest

from service.catalog import Exploration, ExplorationMethod
from service.exploration import draw, selection_probabilities

VALUES = np.array([10.0, 30.0, 20.0])


def test_off_means_the_winner_with_certainty() -> None:
    probabilities = selection_probabilities(VALUES, 1, Exploration())
    assert probabilities.tolist() == [0.0, 1.0, 0.0]


def test_epsilon_greedy_probabilities() -> None:
    settings = Exploration(method=ExplorationMethod.EPSILON_GREEDY, epsilon=0.3)
    probabilities = selection_probabilities(VALUES, 1, settings)
    np.testing.assert_allclose(probabilities, [0.1, 0.8, 0.1])


def test_softmax_follows_expected_value() -> None:
    settings = Exploration(method=ExplorationMethod.SOFTMAX, temperature=10)
    probabilities = selection_probabilities(VALUES, 1, settings)
    expected = np.exp(VALUES / 10) / np.exp(VALUES / 10).sum()
    np.testing.assert_allclose(probabilities, expected)
    assert probabilities.argmax() == 1


def test_draws_follow_the_logged_probabilities() -> None:
    probabilities = np.array([0.1, 0.8, 0.1])
    rng = random.Random(5)
    counts = np.bincount([draw(probabilities, rng) for _ in range(20_000)], minlength=3)
    np.testing.assert_allclose(counts / counts.sum(), probabilities, atol=0.01)


def test_epsilon_greedy_needs_a_positive_epsilon() -> None:
    with pytest.raises(ValueError, match="epsilon"):
        Exploration(method=ExplorationMethod.EPSILON_GREEDY, epsilon=0)
