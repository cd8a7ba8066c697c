"""LightGBM predictions for the small batches of a decision, without the wrapper's per-call work.

`Booster.predict` builds an `_InnerPredictor` on every call (it asks the library for the
class count, copies the parameters, formats them) and checks and converts its input before
the one C call that predicts. For the 25 rows of a decision that wrapper is about a third
of the prediction (`python -m tests.benchmarks --sections floor`: row `predict`).
`SmallBatchPredictor` makes the same C call, `LGBM_BoosterPredictForMat`, with everything
but the matrix prepared once; for the SHAP contributions of reasons too (there the wrapper
is about an eighth of the time: TreeSHAP itself dominates). It uses lightgbm's private
`_LIB`, `_safe_call` and `Booster._handle`: `tests/unit/test_fast_predict.py` holds it
equal to `Booster.predict`, with and without `pred_contrib`, so an upgrade of lightgbm that
changes them fails there first.
"""

from __future__ import annotations

import ctypes

import lightgbm as lgb
import numpy as np
from lightgbm.basic import _safe_call
from lightgbm.libpath import _LIB

_FLOAT64 = 1  # C_API_DTYPE_FLOAT64
_ROW_MAJOR = 1  # C_API_IS_ROW_MAJOR
_PREDICT_NORMAL = 0  # C_API_PREDICT_NORMAL: probabilities for binary, scores for rankers
_PREDICT_CONTRIB = 3  # C_API_PREDICT_CONTRIB: SHAP values (TreeSHAP)
_DOUBLE_P = ctypes.POINTER(ctypes.c_double)


class SmallBatchPredictor:
    """`booster.predict(matrix, num_threads=1)`, and its `pred_contrib=True`, for a booster
    with one model per iteration (binary classifiers and rankers), as one C call each."""

    def __init__(self, booster: lgb.Booster) -> None:
        if booster.num_model_per_iteration() != 1:
            raise ValueError("SmallBatchPredictor scores one output per row (binary or ranker)")
        self._booster = booster  # keeps the handle alive
        self._features = booster.num_feature()
        self._iterations = ctypes.c_int(booster.best_iteration)  # 0: all, as predict does
        self._parameters = ctypes.c_char_p(b"num_threads=1")

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """Scores of the rows of a 2-D matrix with the booster's feature count."""
        return self._call(matrix, _PREDICT_NORMAL, 1)

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        """`booster.predict(matrix, pred_contrib=True, num_threads=1)`: per row, each
        feature's SHAP contribution to the raw score, then the expected value (last column)."""
        return self._call(matrix, _PREDICT_CONTRIB, self._features + 1)

    def _call(self, matrix: np.ndarray, kind: int, width: int) -> np.ndarray:
        if matrix.ndim != 2 or matrix.shape[1] != self._features:
            raise ValueError(
                f"expected a matrix of {self._features} features, got shape {matrix.shape}"
            )
        rows = np.ascontiguousarray(matrix, dtype=np.float64)
        out = np.empty(rows.shape[0] * width, dtype=np.float64)
        if not len(rows):
            return out if width == 1 else out.reshape(0, width)
        written = ctypes.c_int64(0)
        _safe_call(
            _LIB.LGBM_BoosterPredictForMat(
                self._booster._handle,
                rows.ctypes.data_as(_DOUBLE_P),
                ctypes.c_int(_FLOAT64),
                ctypes.c_int32(rows.shape[0]),
                ctypes.c_int32(rows.shape[1]),
                ctypes.c_int(_ROW_MAJOR),
                ctypes.c_int(kind),
                ctypes.c_int(0),  # start iteration
                self._iterations,
                self._parameters,
                ctypes.byref(written),
                out.ctypes.data_as(_DOUBLE_P),
            )
        )
        if written.value != len(out):
            raise RuntimeError(f"LightGBM wrote {written.value} values, expected {len(out)}")
        return out if width == 1 else out.reshape(rows.shape[0], width)
