"""Champion/challenger on a copy of the small stack's registry: gates, promotion, rollback."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import Stack, run_cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def registry(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The stack's env with its own copy of the MLflow store and model cache."""
    root = tmp_path_factory.mktemp("registry")
    shutil.copy(Path(stack.tracking_uri.removeprefix("sqlite:///")), root / "mlflow.db")
    return {
        **stack.env,
        "NBA_MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "NBA_MODEL_CACHE_DIR": str(root / "models"),
        "NBA_BOOTSTRAP_RESAMPLES": "50",
    }


def champion(env: dict[str, str]) -> str:
    uri = env["NBA_MLFLOW_TRACKING_URI"]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return str(client.get_model_version_by_alias("nba-propensity", "champion").version)


def test_worse_challenger_is_refused_better_one_promoted_then_rolled_back(
    registry: dict[str, str], stack: Stack
) -> None:
    assert champion(registry) == "2"
    weak = {**registry, "NBA_NUM_BOOST_ROUND": "1"}
    trained = run_cli(["train"], weak, stack.root)
    assert "version 3" in trained and "@challenger" in trained
    refused = run_cli(["promote"], registry, stack.root)
    assert "gate refused: policy value (doubly robust)" in refused
    assert "not promoted: @champion stays version 2" in refused
    assert champion(registry) == "2"

    strong = run_cli(["train"], registry, stack.root)
    assert "version 4" in strong
    # A full retrain on nearly version 2's data is within noise of it (one touchpoint of this
    # small holdout moved 13 % on one run): the gates allow for that here.
    tolerant = {**registry, "NBA_PROMOTE_MIN_LIFT": "-0.1", "NBA_PROMOTE_MAX_SLICE_DROP": "0.5"}
    promoted = run_cli(["promote"], tolerant, stack.root)
    assert "(needs >= " in promoted and "gate refused" not in promoted
    assert "promoted version 4 to @champion" in promoted
    assert champion(registry) == "4"

    rolled = run_cli(["rollback"], registry, stack.root)
    assert "moved back from version 4 to version 2" in rolled
    assert champion(registry) == "2"


def test_a_stale_comparison_is_refused(registry: dict[str, str], stack: Stack) -> None:
    # The challenger (version 4) was compared with version 2, which is champion again after
    # the rollback: gates apply. Forcing is possible and says so.
    uri = registry["NBA_MLFLOW_TRACKING_URI"]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.set_registered_model_alias("nba-propensity", "champion", "3")
    stale = run_cli(["promote"], registry, stack.root)
    assert "was evaluated against version 2, but the champion is now version 3" in stale
    forced = run_cli(["promote", "--force"], registry, stack.root)
    assert "promoted version 4 by force" in forced
    assert champion(registry) == "4"


def test_closed_loop_serves_feeds_back_retrains(
    registry: dict[str, str], stack: Stack, tmp_path: Path
) -> None:
    log_db = tmp_path / "loop_log.db"
    env = {**registry, "NBA_DECISION_LOG_PATH": str(log_db), "NBA_CATALOG_RELOAD_SECONDS": "0"}
    served = champion(env)
    output = run_cli(["loop", "--rounds", "1", "--per-round", "150"], env, stack.root)
    assert f"round 1: serving version {served}, 150 decisions" in output
    assert "round | served | decisions | true value EUR | acceptance | trained | promoted" in output
    row = next(
        line
        for line in output.splitlines()
        if line.rstrip().endswith(("| yes", "| no")) and f"| v{served}" in line
    )
    true_value = float(row.split("|")[3])
    assert 0 < true_value < 500
    with sqlite3.connect(log_db) as db:
        decisions = db.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
        outcomes = dict(db.execute("SELECT outcome, COUNT(*) FROM feedback GROUP BY outcome"))
    assert decisions == 150
    assert outcomes["impression"] == outcomes.get("accept", 0) + outcomes.get("reject", 0)
    assert outcomes["impression"] > 0
