"""`nba demo` end to end on a small world: real Feast, real MLflow registry, real LightGBM."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import Stack
from training.feature_store import historical_features
from training.simulator import states_at

pytestmark = pytest.mark.integration


def test_demo_reports_progress_for_every_step(stack: Stack) -> None:
    for output in stack.demo_outputs:
        for step in ("[1/3]", "[2/3]", "[3/3]", "demo finished"):
            assert step in output
        assert "curl -s -X POST" in output


def test_running_twice_registers_a_new_champion(stack: Stack) -> None:
    client = MlflowClient(tracking_uri=stack.tracking_uri, registry_uri=stack.tracking_uri)
    versions = client.search_model_versions("name='nba-propensity'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    assert str(client.get_model_version_by_alias("nba-propensity", "champion").version) == "2"


def test_run_logs_params_metrics_and_provenance(stack: Stack) -> None:
    client = MlflowClient(tracking_uri=stack.tracking_uri, registry_uri=stack.tracking_uri)
    version = client.get_model_version_by_alias("nba-propensity", "champion")
    run = client.get_run(version.run_id)
    for metric in (
        "holdout_auc",
        "holdout_log_loss",
        "holdout_top1_oracle_agreement",
        "holdout_ndcg_at_5",
        "holdout_learned_value",
        "holdout_logging_value",
        "holdout_oracle_value",
    ):
        assert metric in run.data.metrics, metric
    assert 0.5 < run.data.metrics["holdout_auc"] <= 1.0
    for param in ("lgb_objective", "rows_train", "holdout_start", "best_iteration"):
        assert param in run.data.params, param
    assert run.data.params["lgb_objective"] == "binary"
    assert {"git_commit", "lightgbm_version", "feast_version", "seed"} <= set(run.data.tags)
    assert run.data.params["holdout_start"] > run.data.params["valid_start"]


def test_learned_policy_beats_logging_and_rules_below_the_oracle(stack: Stack) -> None:
    client = MlflowClient(tracking_uri=stack.tracking_uri, registry_uri=stack.tracking_uri)
    run = client.get_run(client.get_model_version_by_alias("nba-propensity", "champion").run_id)
    m = run.data.metrics
    assert m["holdout_learned_value"] > m["holdout_logging_value"]
    assert m["holdout_learned_value"] > m["holdout_rules_value"]
    assert m["holdout_learned_value"] > m["holdout_random_value"]
    assert m["holdout_oracle_value"] >= m["holdout_learned_value"]


def test_point_in_time_join_returns_the_state_at_decision_time(stack: Stack) -> None:
    data = stack.root / "data"
    decisions = pd.read_parquet(data / "decisions.parquet").sample(2000, random_state=0)
    features = stack.feature_repo / "data"
    profile = pd.read_parquet(features / "customer_profile.parquet")
    activity = pd.read_parquet(features / "customer_activity.parquet")
    latent = pd.read_parquet(data / "ground_truth_latent.parquet")
    joined = historical_features(stack.feature_repo, decisions, "nba_model_features")
    truth = states_at(
        profile,
        activity,
        latent,
        decisions["customer_id"].to_numpy(),
        decisions["event_timestamp"].reset_index(drop=True),
    )
    assert list(joined["decision_id"]) == list(decisions["decision_id"])
    for column in ("balance", "open_complaints", "digital_logins_30d", "age", "has_mortgage"):
        np.testing.assert_allclose(
            joined[column].to_numpy(float), truth[column].to_numpy(float), err_msg=column
        )
