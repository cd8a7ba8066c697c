import numpy as np

from service.arbitration import best_index, expected_values


def test_expected_value_weights_propensity_by_value_minus_cost() -> None:
    ev = expected_values(np.array([0.5, 0.1]), np.array([100.0, 900.0]), np.array([10.0, 5.0]))
    np.testing.assert_allclose(ev, [40.0, 85.0])
    assert best_index(ev) == 1


def test_nothing_above_threshold_means_no_action() -> None:
    assert best_index(np.array([-1.0, 0.0])) is None
    assert best_index(np.array([3.0, 2.0]), threshold=5.0) is None
    assert best_index(np.array([])) is None
