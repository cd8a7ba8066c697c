"""Bring your own logs: import a CSV export with context features, then train and evaluate."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from service.catalog import Catalog
from tests.conftest import Stack, run_cli, run_cli_failing
from training.simulator import states_at

pytestmark = pytest.mark.integration

FEATURES = [
    "age",
    "tenure_months",
    "monthly_income",
    "balance",
    "open_complaints",
    "digital_logins_30d",
    "has_credit_card",
    "has_mortgage",
    "has_savings",
]


def export_like_a_bank(stack: Stack, folder: Path, catalog: Catalog) -> tuple[Path, Path]:
    """The simulated history as another system would export it: one CSV, features inline."""
    data, features = stack.root / "data", stack.feature_repo / "data"
    decisions = pd.read_parquet(data / "decisions.parquet")
    states = states_at(
        pd.read_parquet(features / "customer_profile.parquet"),
        pd.read_parquet(features / "customer_activity.parquet"),
        pd.read_parquet(data / "ground_truth_latent.parquet"),
        decisions["customer_id"].to_numpy(),
        decisions["event_timestamp"],
    )
    export = pd.DataFrame(
        {
            "timestamp": decisions["event_timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "customer_id": decisions["customer_id"],
            "touchpoint": decisions["touchpoint"],
            "action_id": decisions["action_id"],
            "propensity": decisions["propensity"],
            "reward": decisions["reward"],
        }
    )
    for column in FEATURES:
        export[column] = states[column].to_numpy()
    actions = pd.DataFrame(
        [
            {"action_id": a.id, "value": a.value, "cost": a.cost, "type": a.type.value}
            for a in catalog.actions
            if a.type.value != "no_action"
        ]
    )
    log_path, actions_path = folder / "export.csv", folder / "actions.csv"
    export.to_csv(log_path, index=False)
    actions.to_csv(actions_path, index=False)
    return log_path, actions_path


def import_args(log_path: Path, actions_path: Path, out: Path) -> list[str]:
    return [
        "import-logs",
        "--decisions",
        str(log_path),
        "--actions",
        str(actions_path),
        "--out",
        str(out),
    ]


def test_imported_logs_train_and_evaluate_end_to_end(
    stack: Stack, catalog: Catalog, tmp_path: Path
) -> None:
    log_path, actions_path = export_like_a_bank(stack, tmp_path, catalog)
    out = tmp_path / "imported"
    imported = run_cli(
        import_args(log_path, actions_path, out),
        stack.env,
        stack.root,
    )
    assert "imported 24000 decisions, 19 actions" in imported
    env = {
        **stack.env,
        "NBA_TRAINING_LOG": str(out / "decisions.parquet"),
        "NBA_CATALOG_PATH": str(out / "catalog.yaml"),
        "NBA_MODEL_NAME": "byo-propensity",
        "NBA_BOOTSTRAP_RESAMPLES": "50",
        "NBA_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "NBA_MLFLOW_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "NBA_MODEL_CACHE_DIR": str(tmp_path / "models"),
    }
    trained = run_cli(["train"], env, stack.root)
    assert "byo-propensity version 1" in trained
    uri = env["NBA_MLFLOW_TRACKING_URI"]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version_by_alias("byo-propensity", "champion")
    run = client.get_run(str(version.run_id))
    assert run.data.params["feature_source"] == "inline"
    m = run.data.metrics
    assert m["candidate/auc"] > 0.6
    assert m["candidate/dr"] > m["policy/logging/observed"]
    assert "policy/oracle/true_value" not in m, "no ground truth outside the simulator"


def test_a_broken_export_is_refused_with_row_and_column(
    stack: Stack, catalog: Catalog, tmp_path: Path
) -> None:
    log_path, actions_path = export_like_a_bank(stack, tmp_path, catalog)
    frame = pd.read_csv(log_path)
    frame.loc[41, "propensity"] = 0
    frame.to_csv(log_path, index=False)
    output = run_cli_failing(
        import_args(log_path, actions_path, tmp_path / "x"),
        stack.env,
        stack.root,
    )
    assert "row 42 (line 43 of the file), column 'propensity'" in output
