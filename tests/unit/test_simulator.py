import importlib.util
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from service.catalog import Catalog
from service.vocabulary import Touchpoint
from training.response import accept_probability, logging_probabilities
from training.simulator import SimulationConfig, simulate, states_at

ROOT = Path(__file__).resolve().parents[2]
CONFIG = SimulationConfig(
    n_customers=400, n_decisions=3000, as_of=datetime(2026, 6, 1, tzinfo=UTC), seed=3
)


@pytest.fixture(scope="module")
def world(catalog: Catalog):
    return simulate(CONFIG, catalog)


def test_same_seed_same_world_other_seed_other_world(catalog: Catalog, world) -> None:
    again = simulate(CONFIG, catalog)
    pd.testing.assert_frame_equal(world.decisions, again.decisions)
    pd.testing.assert_frame_equal(world.activity, again.activity)
    other = simulate(SimulationConfig(**{**CONFIG.__dict__, "seed": 4}), catalog)
    assert not world.decisions["action_id"].equals(other.decisions["action_id"])


def test_columns_match_the_feast_definitions(world) -> None:
    spec = importlib.util.spec_from_file_location(
        "definitions", ROOT / "feature_repo" / "definitions.py"
    )
    assert spec and spec.loader
    definitions = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(definitions)
    for view, frame in (
        (definitions.customer_profile, world.profile),
        (definitions.customer_activity, world.activity),
        (definitions.customer_consent, world.consent),
    ):
        expected = {f.name for f in view.schema} | {"customer_id", "event_timestamp"}
        assert set(frame.columns) == expected, view.name
        assert all(f.description for f in view.schema), view.name


def test_decisions_lie_in_the_history_window_and_use_allowed_actions(
    catalog: Catalog, world
) -> None:
    decisions = world.decisions
    assert decisions["decision_id"].is_unique
    assert decisions["event_timestamp"].min() >= pd.Timestamp(CONFIG.start)
    assert decisions["event_timestamp"].max() < pd.Timestamp(CONFIG.as_of)
    for touchpoint, group in decisions.groupby("touchpoint"):
        allowed = {a.id for a in catalog.candidates(Touchpoint(touchpoint))}
        assert set(group["action_id"]) <= allowed
    assert set(decisions["touchpoint"]) == {t.value for t in Touchpoint}


def test_logged_propensity_is_the_logging_policy_probability(catalog: Catalog, world) -> None:
    decisions = world.decisions
    states = states_at(
        world.profile,
        world.activity,
        world.latent,
        decisions["customer_id"].to_numpy(),
        decisions["event_timestamp"],
    )
    for touchpoint in Touchpoint:
        rows = np.flatnonzero(decisions["touchpoint"] == touchpoint.value)
        candidates = catalog.candidates(touchpoint)
        probabilities = logging_probabilities(states.iloc[rows], candidates, CONFIG.exploration)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
        column = [[a.id for a in candidates].index(x) for x in decisions["action_id"].iloc[rows]]
        np.testing.assert_allclose(
            decisions["propensity"].iloc[rows], probabilities[np.arange(len(rows)), column]
        )
    assert decisions["propensity"].between(0, 1, inclusive="right").all()


def test_open_complaint_turns_offers_down_and_the_fix_up(catalog: Catalog, world) -> None:
    state = states_at(
        world.profile,
        world.activity,
        world.latent,
        world.profile["customer_id"].to_numpy()[:1],
        pd.Series([pd.Timestamp(CONFIG.as_of)]),
    )
    calm = state.assign(open_complaints=0, has_credit_card=0)
    upset = state.assign(open_complaints=1, has_credit_card=0)
    actions = np.array(["credit_card_offer", "resolve_complaint", "no_action"])
    for touchpoint in ("call_center", "web"):
        tps = np.full(3, touchpoint)
        p_calm = accept_probability(pd.concat([calm] * 3), actions, tps, catalog)
        p_upset = accept_probability(pd.concat([upset] * 3), actions, tps, catalog)
        assert p_upset[0] < p_calm[0] / 5
        assert p_upset[1] > 0.5 > p_calm[1]
        assert p_calm[2] == p_upset[2] == 0.0


def test_complaints_come_and_go_over_the_weeks(world) -> None:
    per_week = world.activity.groupby("event_timestamp")["open_complaints"].apply(
        lambda s: (s > 0).mean()
    )
    assert per_week.between(0.01, 0.3).all()
    changed = world.activity.groupby("customer_id")["open_complaints"].nunique() > 1
    assert changed.mean() > 0.02
