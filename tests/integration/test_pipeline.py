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


def champion_metrics(stack: Stack) -> dict[str, float]:
    client = MlflowClient(tracking_uri=stack.tracking_uri, registry_uri=stack.tracking_uri)
    version = client.get_model_version_by_alias("nba-propensity", "champion")
    return client.get_run(str(version.run_id)).data.metrics


def test_demo_reports_progress_for_every_step(stack: Stack) -> None:
    for output in stack.demo_outputs:
        for step in ("[1/4]", "[2/4]", "[3/4]", "[4/4]", "demo finished"):
            assert step in output
        assert "curl -s -X POST" in output
    assert "nothing to promote: version 1 is already @champion" in stack.demo_outputs[0]
    assert "gate passed: policy value (doubly robust)" in stack.demo_outputs[1]


def test_running_twice_promotes_the_second_version(stack: Stack) -> None:
    client = MlflowClient(tracking_uri=stack.tracking_uri, registry_uri=stack.tracking_uri)
    versions = client.search_model_versions("name='nba-propensity'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    champion = client.get_model_version_by_alias("nba-propensity", "champion")
    assert str(champion.version) == "2"
    assert champion.tags["previous_champion"] == "1"
    assert champion.tags["compared_with_champion"] == "1"
    assert champion.tags["model_family"] in ("binary", "ranker")


def test_run_logs_metrics_with_intervals_slices_and_provenance(stack: Stack) -> None:
    client = MlflowClient(tracking_uri=stack.tracking_uri, registry_uri=stack.tracking_uri)
    version = client.get_model_version_by_alias("nba-propensity", "champion")
    run = client.get_run(str(version.run_id))
    m = run.data.metrics
    for family in ("binary", "ranker"):
        for metric in (
            "auc",
            "auc_lo",
            "auc_hi",
            "log_loss",
            "brier",
            "calibration_error",
            "hit_at_1",
            "ndcg_at_5",
            "touchpoint_web/auc",
            "age_30-44/auc",
        ):
            assert f"model_{family}/{metric}" in m, (family, metric)
    assert m["candidate/auc_lo"] <= m["candidate/auc"] <= m["candidate/auc_hi"]
    for policy in (
        "binary",
        "ranker",
        "champion",
        "rules",
        "popular",
        "random",
        "logging",
        "oracle",
    ):
        for estimator in ("ips", "snips", "dr", "dr_ess", "dr_lo", "dr_hi", "true_value"):
            assert f"policy/{policy}/{estimator}" in m, (policy, estimator)
    assert 0.5 < m["candidate/auc"] <= 1.0
    params = run.data.params
    for param in (
        "model_family",
        "rows_train",
        "holdout_start",
        "data_start",
        "data_end",
        "seed",
        "best_iteration",
    ):
        assert param in params, param
    assert params["holdout_start"] > params["valid_start"]
    tags = run.data.tags
    assert {
        "git_commit",
        "lightgbm_version",
        "feast_version",
        "mlflow_version",
        "numpy_version",
        "seed",
    } <= set(tags)


def test_learned_policy_beats_logging_and_baselines_below_the_oracle(stack: Stack) -> None:
    m = champion_metrics(stack)
    learned = m["candidate/true_value"]
    for baseline in ("logging", "rules", "popular", "random"):
        assert learned > m[f"policy/{baseline}/true_value"], baseline
    assert m["policy/oracle/true_value"] >= learned
    assert m["candidate/regret"] == pytest.approx(m["policy/oracle/true_value"] - learned)


def test_off_policy_estimates_land_near_the_true_value(stack: Stack) -> None:
    m = champion_metrics(stack)
    for policy in ("binary", "ranker", "rules", "logging"):
        truth = m[f"policy/{policy}/true_value"]
        assert m[f"policy/{policy}/dr_lo"] <= truth <= m[f"policy/{policy}/dr_hi"], policy
        assert m[f"policy/{policy}/dr_error"] < 0.15 * abs(truth), policy
    # On-policy, the logging policy's estimate is its observed mean reward.
    assert m["policy/logging/snips"] == pytest.approx(m["policy/logging/observed"], rel=1e-6)


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
