"""The engine's own logic, on a small real LightGBM model and an in-memory feature reader."""

from typing import Any

import lightgbm as lgb
import numpy as np
import pytest

from service.catalog import Catalog
from service.engine import UNKNOWN_CUSTOMER_NOTICE, DecisionEngine
from service.features import FeatureSpec, featurize
from service.model import LoadedModel
from service.vocabulary import ActionType, Touchpoint


class DictFeatures:
    def __init__(self, rows: dict[str, dict[str, Any]]) -> None:
        self.rows = rows

    def read(self, customer_id: str) -> dict[str, Any] | None:
        return self.rows.get(customer_id)


@pytest.fixture(scope="module")
def model(catalog: Catalog) -> LoadedModel:
    """A booster that learned: customers with a complaint accept resolve_complaint only."""
    spec = FeatureSpec(
        customer_features=("open_complaints",), actions=tuple(a.id for a in catalog.actions)
    )
    rng = np.random.default_rng(0)
    actions = [a for a in catalog.actions if a.type is not ActionType.NO_ACTION]
    n = 6000
    picked = rng.integers(0, len(actions), n)
    complaint = rng.integers(0, 2, n).astype(float)
    ids = [actions[i].id for i in picked]
    matrix = featurize(
        spec, complaint[:, None], ids, [actions[i].type.value for i in picked], ["web"] * n
    )
    is_fix = np.array([i == "resolve_complaint" for i in ids])
    p = np.where(is_fix, np.where(complaint == 1, 0.8, 0.01), np.where(complaint == 1, 0.01, 0.2))
    labels = (rng.random(n) < p).astype(float)
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "min_data_in_leaf": 20},
        lgb.Dataset(
            matrix,
            labels,
            feature_name=spec.feature_names,
            categorical_feature=spec.categorical_features,
        ),
        num_boost_round=60,
    )
    return LoadedModel(booster=booster, spec=spec, name="test", version="1", alias="champion")


def test_complaint_gets_fixed_first(catalog: Catalog, model: LoadedModel) -> None:
    engine = DecisionEngine(catalog, model, DictFeatures({"c1": {"open_complaints": 1}}))
    decision = engine.decide("c1", Touchpoint.WEB)
    assert decision.chosen.action.id == "resolve_complaint"
    assert decision.personalised and decision.notices == []


def test_ranking_is_by_expected_value_and_limited_to_the_touchpoint(
    catalog: Catalog, model: LoadedModel
) -> None:
    engine = DecisionEngine(catalog, model, DictFeatures({"c0": {"open_complaints": 0}}))
    decision = engine.decide("c0", Touchpoint.EMAIL)
    values = [s.expected_value for s in decision.ranked]
    assert values == sorted(values, reverse=True)
    allowed = {a.id for a in catalog.candidates(Touchpoint.EMAIL)} | {"no_action"}
    assert {s.action.id for s in decision.ranked} == allowed
    for scored in decision.ranked:
        if scored.propensity is not None:
            expected = scored.propensity * scored.action.value - scored.action.cost
            assert scored.expected_value == pytest.approx(expected)


def test_unknown_customer_gets_a_flagged_non_personalised_answer(
    catalog: Catalog, model: LoadedModel
) -> None:
    engine = DecisionEngine(catalog, model, DictFeatures({}))
    decision = engine.decide("nobody", Touchpoint.STORE)
    assert not decision.personalised
    assert decision.notices == [UNKNOWN_CUSTOMER_NOTICE]


def test_high_threshold_answers_no_action(catalog: Catalog, model: LoadedModel) -> None:
    engine = DecisionEngine(
        catalog, model, DictFeatures({"c0": {"open_complaints": 0}}), threshold=10_000.0
    )
    decision = engine.decide("c0", Touchpoint.WEB)
    assert decision.chosen.action.id == "no_action"
    assert decision.ranked[0].action.id == "no_action"
