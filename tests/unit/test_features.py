import math
from typing import Any, cast

import numpy as np
import pandas as pd
import pytest

from service.features import (
    FeatureSpec,
    customer_matrix_from_frame,
    customer_vector,
    featurize,
)

SPEC = FeatureSpec(customer_features=("age", "balance"), actions=("a", "b"))


def test_feature_names_put_context_after_customer_features() -> None:
    assert SPEC.feature_names == [
        "age",
        "balance",
        "action_code",
        "action_type_code",
        "touchpoint_code",
    ]
    assert SPEC.categorical_features == ["action_code", "action_type_code", "touchpoint_code"]


def test_spec_round_trips_through_its_dict_form() -> None:
    assert FeatureSpec.from_dict(SPEC.to_dict()) == SPEC


def test_one_customer_is_broadcast_to_every_candidate() -> None:
    customer = customer_vector(SPEC, {"age": 40, "balance": 1200.5})
    matrix = featurize(SPEC, customer, ["a", "b"], ["offer", "info"], ["web", "web"])
    assert matrix.dtype == np.float64
    assert matrix.shape == (2, 5)
    assert matrix[:, 0].tolist() == [40, 40]
    assert matrix[:, 2].tolist() == [0, 1]
    assert matrix[:, 3].tolist() == [0, 3]
    assert matrix[:, 4].tolist() == [0, 0]


def test_unknown_values_become_missing_not_errors() -> None:
    customer = customer_vector(SPEC, {"age": None})
    matrix = featurize(SPEC, customer, ["brand_new_action"], ["offer"], ["kiosk"])
    assert math.isnan(matrix[0, 0]) and math.isnan(matrix[0, 1])
    assert math.isnan(matrix[0, 2]) and math.isnan(matrix[0, 4])
    assert np.isnan(customer_vector(SPEC, None)).all()


def test_training_frame_and_serving_vector_give_the_same_rows() -> None:
    frame = pd.DataFrame({"balance": [10.0, 20.0], "age": [30, 50], "other": ["x", "y"]})
    from_frame = featurize(
        SPEC,
        customer_matrix_from_frame(SPEC, frame),
        ["a", "b"],
        ["offer", "offer"],
        ["app", "store"],
    )
    for i in range(2):
        served = featurize(
            SPEC,
            customer_vector(SPEC, cast(dict[str, Any], frame.iloc[i].to_dict())),
            [["a", "b"][i]],
            ["offer"],
            [["app", "store"][i]],
        )
        np.testing.assert_array_equal(from_frame[i], served[0])


def test_shape_mismatches_are_refused() -> None:
    with pytest.raises(ValueError, match="same length"):
        featurize(SPEC, customer_vector(SPEC, None), ["a"], ["offer", "offer"], ["web"])
    with pytest.raises(ValueError, match="customers must be"):
        featurize(SPEC, np.zeros((3, 2)), ["a", "b"], ["offer", "offer"], ["web", "web"])
