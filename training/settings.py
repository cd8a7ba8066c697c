"""Training settings: the service's settings (same `NBA_*` variables) plus training knobs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pydantic import Field, field_validator

from service.settings import ServiceSettings


def _today_utc() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


class TrainingSettings(ServiceSettings):
    """Everything `nba` needs; shared fields come from `ServiceSettings` so both sides agree."""

    data_dir: Path = Field(Path("data"), description="Decision log and simulator ground truth")
    mlflow_artifact_root: Path = Field(
        Path("mlruns/artifacts"),
        description="Where MLflow stores run artifacts (a file store; a tracking server keeps "
        "them in its own artifact store)",
    )
    experiment_name: str = Field("nba-propensity", description="MLflow experiment")
    seed: int = Field(7, description="Seed of the simulator and of LightGBM")
    n_customers: int = Field(20_000, ge=10, description="Simulated customers")
    n_decisions: int = Field(100_000, ge=100, description="Simulated logged decisions")
    history_weeks: int = Field(13, ge=2, description="Weeks of simulated history")
    as_of: datetime = Field(
        default_factory=_today_utc, description="End of simulated history (UTC)"
    )
    exploration: float = Field(
        0.3, gt=0, le=1, description="Exploration rate of the logging policy"
    )
    holdout_fraction: float = Field(
        0.2, gt=0, lt=0.5, description="Latest share of decisions held out"
    )
    num_boost_round: int = Field(200, ge=1, description="Maximum LightGBM boosting rounds")
    training_log: Path = Field(
        Path("data/decisions.parquet"),
        description="Decision history to train on (simulated or imported, canonical columns)",
    )
    bootstrap_resamples: int = Field(200, ge=10, description="Resamples for confidence intervals")
    policy_eval_decisions: int = Field(
        100_000,
        ge=1000,
        description="Holdout decisions on which policies are valued and candidates ranked (a "
        "uniform random sample of a larger holdout)",
    )
    promote_min_lift: float = Field(
        0.0, description="Relative policy-value lift over the champion a challenger needs"
    )
    promote_max_calibration_error: float = Field(
        0.05, ge=0, description="Largest expected calibration error a champion may have"
    )
    dask_scheduler: str = Field(
        "",
        description="Address of a Dask scheduler for `nba train --dask` (empty: start a "
        "local cluster)",
    )
    dask_workers: int = Field(2, ge=1, description="Worker processes of the local Dask cluster")
    dask_partitions: int = Field(
        8, ge=1, description="Customer-hash partitions of the decision log for `--dask`"
    )
    promote_max_slice_drop: float = Field(
        0.10, ge=0, description="Largest relative drop of any touchpoint's policy value"
    )

    @field_validator("as_of")
    @classmethod
    def _as_utc(cls, value: datetime) -> datetime:
        """Naive times are taken as UTC."""
        return value if value.tzinfo else value.replace(tzinfo=UTC)
