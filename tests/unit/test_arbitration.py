import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from service.arbitration import NO_ACTION_KEY, expected_values, rank_key, winners


def test_expected_value_weights_propensity_by_value_minus_cost() -> None:
    ev = expected_values(np.array([0.5, 0.1]), np.array([100.0, 900.0]), np.array([10.0, 5.0]))
    np.testing.assert_allclose(ev, [40.0, 85.0])


def test_highest_value_wins_above_the_threshold() -> None:
    ev = np.array([[40.0, 85.0], [0.1, 0.3]])
    everything = np.ones((2, 2), dtype=bool)
    assert winners(ev, np.zeros(2), everything, 0.5).tolist() == [1, 2]  # 2 = no_action


def test_must_do_wins_whenever_eligible() -> None:
    ev = np.array([[10.0, 50.0, -1.0], [10.0, 50.0, -1.0]])
    eligible = np.array([[True, True, True], [True, True, False]])
    assert winners(ev, np.array([0, 0, 5]), eligible, 0.5).tolist() == [2, 1]


@settings(max_examples=200, deadline=None)
@given(
    ev=arrays(np.float64, (4, 5), elements=st.floats(-100, 1000)),
    priorities=arrays(np.int64, 5, elements=st.sampled_from([0, 0, 3, 7])),
    eligible=arrays(np.bool_, (4, 5)),
    threshold=st.floats(-5, 5),
)
def test_winner_is_eligible_and_beats_every_other_qualifying_action(
    ev: np.ndarray, priorities: np.ndarray, eligible: np.ndarray, threshold: float
) -> None:
    chosen = winners(ev, priorities, eligible, threshold)
    for i, j in enumerate(chosen):
        qualifying = [
            k for k in range(5) if eligible[i, k] and (ev[i, k] > threshold or priorities[k] > 0)
        ]
        if j == 5:
            assert not qualifying
            assert all(
                rank_key(float(ev[i, k]), int(priorities[k]), threshold) < NO_ACTION_KEY
                for k in range(5)
                if eligible[i, k]
            )
            continue
        assert j in qualifying
        best = max(qualifying, key=lambda k: (priorities[k], ev[i, k]))
        assert (priorities[j], ev[i, j]) == (priorities[best], ev[i, best])
        # The engine sorts with rank_key: its first eligible action is the same winner.
        keys = [
            rank_key(float(ev[i, k]), int(priorities[k]), threshold)
            for k in range(5)
            if eligible[i, k]
        ]
        assert max(keys) == rank_key(float(ev[i, j]), int(priorities[j]), threshold)
        assert max(keys) > NO_ACTION_KEY
