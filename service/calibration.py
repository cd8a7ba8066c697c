"""A monotone map from a model's raw score to a probability of acceptance."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Calibration:
    """Interpolation points of the map; scores outside the range are clipped to its ends."""

    x: tuple[float, ...]
    y: tuple[float, ...]

    def apply(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities."""
        return np.asarray(np.interp(scores, self.x, self.y), dtype=np.float64)

    def to_dict(self) -> dict[str, list[float]]:
        """JSON-ready form, stored with the model."""
        return {"x": list(self.x), "y": list(self.y)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Sequence[float]]) -> Calibration:
        """Inverse of `to_dict`."""
        return cls(tuple(float(v) for v in raw["x"]), tuple(float(v) for v in raw["y"]))
