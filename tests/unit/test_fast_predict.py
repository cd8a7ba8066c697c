"""SmallBatchPredictor gives exactly what `Booster.predict(..., num_threads=1)` gives, with
and without `pred_contrib`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import lightgbm as lgb
import numpy as np
import pytest

from service.catalog import Catalog
from service.errors import ModelLoadError
from service.fast_predict import SmallBatchPredictor
from service.model import LoadedModel
from tests.unit.engine_kit import train_model

FEATURES = 6


def _data(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    matrix = rng.normal(size=(rows, FEATURES))
    matrix[:, 0] = rng.integers(0, 5, rows)  # a categorical column
    matrix[rng.random((rows, FEATURES)) < 0.05] = np.nan
    labels = (matrix[:, 1] + rng.normal(scale=0.5, size=rows) > 0).astype(float)
    return matrix, labels


def _train(params: dict[str, object], rounds: int = 30, **dataset: object) -> lgb.Booster:
    matrix, labels = _data(600, 0)
    data = lgb.Dataset(matrix, labels, categorical_feature=[0], **dataset)  # type: ignore[arg-type]
    return lgb.train({"verbose": -1, "seed": 1, **params}, data, num_boost_round=rounds)


def _inputs() -> list[np.ndarray]:
    matrix, _ = _data(25, 7)
    unseen = matrix.copy()
    unseen[:, 0] = 9  # a category the model never saw
    return [matrix, matrix[:1], unseen, np.asfortranarray(matrix), matrix.astype(np.float32)]


@pytest.mark.parametrize(
    ("params", "dataset"),
    [
        ({"objective": "binary"}, {}),
        ({"objective": "rank_xendcg"}, {"group": [25] * 24}),
        ({"objective": "lambdarank"}, {"group": [25] * 24}),
    ],
    ids=["binary", "rank_xendcg", "lambdarank"],
)
def test_equals_booster_predict(params: dict[str, object], dataset: dict[str, Any]) -> None:
    booster = _train(params, **dataset)
    predictor = SmallBatchPredictor(booster)
    for matrix in _inputs():
        expected = booster.predict(matrix, num_threads=1)
        np.testing.assert_array_equal(predictor.predict(matrix), expected)
        # a dense matrix in gives a dense array out (not the sparse variants)
        contributions = cast(np.ndarray, booster.predict(matrix, pred_contrib=True, num_threads=1))
        assert contributions.shape == (len(matrix), FEATURES + 1)
        np.testing.assert_array_equal(predictor.contributions(matrix), contributions)


def test_follows_the_best_iteration_as_predict_does() -> None:
    booster = _train({"objective": "binary"}, rounds=40)
    booster.best_iteration = 10
    matrix = _inputs()[0]
    scores = SmallBatchPredictor(booster).predict(matrix)
    np.testing.assert_array_equal(scores, booster.predict(matrix, num_threads=1))
    assert not np.array_equal(scores, booster.predict(matrix, num_iteration=40, num_threads=1))


def test_a_model_file_round_trip_scores_the_same(tmp_path: Path) -> None:
    booster = _train({"objective": "binary"})
    path = f"{tmp_path}/model.lgb"
    booster.save_model(path)
    loaded = lgb.Booster(model_file=path)
    matrix = _inputs()[0]
    np.testing.assert_array_equal(
        SmallBatchPredictor(loaded).predict(matrix), booster.predict(matrix, num_threads=1)
    )


def test_no_rows_gives_no_scores() -> None:
    predictor = SmallBatchPredictor(_train({"objective": "binary"}))
    assert predictor.predict(np.empty((0, FEATURES))).shape == (0,)
    assert predictor.contributions(np.empty((0, FEATURES))).shape == (0, FEATURES + 1)


def test_a_matrix_of_the_wrong_width_is_refused() -> None:
    predictor = SmallBatchPredictor(_train({"objective": "binary"}))
    with pytest.raises(ValueError, match="expected a matrix of 6 features"):
        predictor.predict(np.zeros((3, FEATURES + 1)))
    with pytest.raises(ValueError, match="expected a matrix of 6 features"):
        predictor.predict(np.zeros(FEATURES))


def test_a_multiclass_model_is_refused_at_load(catalog: Catalog) -> None:
    matrix, labels = _data(300, 1)
    booster = lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1},
        lgb.Dataset(matrix, (labels + (matrix[:, 2] > 1)).astype(int)),
        num_boost_round=5,
    )
    with pytest.raises(ValueError, match="one output per row"):
        SmallBatchPredictor(booster)
    model = train_model(catalog)
    with pytest.raises(ModelLoadError, match="model test version 1"):
        LoadedModel(booster=booster, spec=model.spec, name="test", version="1", alias="champion")


def test_the_served_model_predicts_through_it(catalog: Catalog) -> None:
    model = train_model(catalog)
    rng = np.random.default_rng(3)
    matrix = rng.normal(size=(25, model.booster.num_feature()))
    np.testing.assert_array_equal(
        model.predict(matrix), model.booster.predict(matrix, num_threads=1)
    )
    np.testing.assert_array_equal(
        model.contributions(matrix[:1]),
        model.booster.predict(matrix[:1], pred_contrib=True, num_threads=1),
    )
