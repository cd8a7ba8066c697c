"""The one featurisation of (customer, action, touchpoint) rows, shared by training and serving.

A `FeatureSpec` travels with every model version (as MLflow model metadata), so the
service builds exactly the columns, in exactly the order and coding, the model saw.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from service.vocabulary import ActionType, Touchpoint

ACTION_FEATURE = "action_code"
ACTION_TYPE_FEATURE = "action_type_code"
TOUCHPOINT_FEATURE = "touchpoint_code"
CONTEXT_FEATURES = (ACTION_FEATURE, ACTION_TYPE_FEATURE, TOUCHPOINT_FEATURE)


@dataclass(frozen=True)
class FeatureSpec:
    """Column order and category codes of a model's input matrix."""

    customer_features: tuple[str, ...]
    actions: tuple[str, ...]
    action_types: tuple[str, ...] = tuple(t.value for t in ActionType)
    touchpoints: tuple[str, ...] = tuple(t.value for t in Touchpoint)
    _codes: dict[str, dict[str, float]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        codes = {
            ACTION_FEATURE: {a: float(i) for i, a in enumerate(self.actions)},
            ACTION_TYPE_FEATURE: {t: float(i) for i, t in enumerate(self.action_types)},
            TOUCHPOINT_FEATURE: {t: float(i) for i, t in enumerate(self.touchpoints)},
        }
        object.__setattr__(self, "_codes", codes)

    @property
    def feature_names(self) -> list[str]:
        """All model inputs, in matrix column order."""
        return [*self.customer_features, *CONTEXT_FEATURES]

    @property
    def categorical_features(self) -> list[str]:
        """Inputs LightGBM must treat as categories."""
        return list(CONTEXT_FEATURES)

    def codes(self, feature: str, values: Sequence[str]) -> np.ndarray:
        """Category codes of the values; NaN (LightGBM's 'missing') for values never seen."""
        table = self._codes[feature]
        return np.fromiter((table.get(v, math.nan) for v in values), np.float64, len(values))

    def to_dict(self) -> dict[str, list[str]]:
        """JSON-ready form, stored with the model."""
        return {
            "customer_features": list(self.customer_features),
            "actions": list(self.actions),
            "action_types": list(self.action_types),
            "touchpoints": list(self.touchpoints),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Sequence[str]]) -> FeatureSpec:
        """Inverse of `to_dict`."""
        return cls(
            customer_features=tuple(raw["customer_features"]),
            actions=tuple(raw["actions"]),
            action_types=tuple(raw["action_types"]),
            touchpoints=tuple(raw["touchpoints"]),
        )


def customer_matrix_from_frame(spec: FeatureSpec, frame: pd.DataFrame) -> np.ndarray:
    """Customer feature columns of a DataFrame (one row per decision) as float64."""
    return frame[list(spec.customer_features)].to_numpy(dtype=np.float64, na_value=np.nan)


def customer_vector(spec: FeatureSpec, values: Mapping[str, Any] | None) -> np.ndarray:
    """One customer's online features as a (1, k) float64 row; missing values become NaN.

    `None` means no customer features at all (unknown customer, or a non-personalised answer).
    """
    row = np.full((1, len(spec.customer_features)), np.nan)
    if values is not None:
        for j, name in enumerate(spec.customer_features):
            value = values.get(name)
            if value is not None:
                row[0, j] = float(value)
    return row


def featurize(
    spec: FeatureSpec,
    customers: np.ndarray,
    action_ids: Sequence[str],
    action_types: Sequence[str],
    touchpoints: Sequence[str],
) -> np.ndarray:
    """Model input matrix for (customer, action, touchpoint) rows.

    `customers` is (n, k) for n rows, or (1, k) to reuse one customer for every row.
    """
    n = len(action_ids)
    if not len(action_types) == len(touchpoints) == n:
        raise ValueError("action_ids, action_types and touchpoints must have the same length")
    k = len(spec.customer_features)
    if customers.ndim != 2 or customers.shape[1] != k or customers.shape[0] not in (1, n):
        raise ValueError(f"customers must be (1, {k}) or ({n}, {k}), got {customers.shape}")
    matrix = np.empty((n, k + len(CONTEXT_FEATURES)), dtype=np.float64)
    matrix[:, :k] = customers
    matrix[:, k] = spec.codes(ACTION_FEATURE, action_ids)
    matrix[:, k + 1] = spec.codes(ACTION_TYPE_FEATURE, action_types)
    matrix[:, k + 2] = spec.codes(TOUCHPOINT_FEATURE, touchpoints)
    return matrix
