"""Train the propensity model, evaluate it on the holdout, log it to MLflow and register it."""

from __future__ import annotations

import logging
import subprocess
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
from feast import FeatureStore
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from service.catalog import Catalog
from service.feature_client import feature_service_columns
from service.features import FeatureSpec
from training.dataset import TimeSplit, design_matrix, join_features, load_decisions, time_split
from training.evaluation import classification_metrics, simulated_policy_values
from training.settings import TrainingSettings

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "model"
NON_PERSONALISED_SHARE = 0.05


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced."""

    run_id: str
    model_version: str
    metrics: dict[str, float]


def lightgbm_params(seed: int) -> dict[str, object]:
    """Binary objective without class re-weighting, so scores stay calibrated propensities."""
    return {
        "objective": "binary",
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_data_in_leaf": 40,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.9,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "cat_smooth": 10,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "verbose": -1,
    }


def with_non_personalised_rows(
    matrix: np.ndarray, labels: np.ndarray, spec: FeatureSpec, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Append a share of rows with every customer feature missing.

    The model then learns the population response per action and touchpoint for rows
    without customer features: the non-personalised answer for unknown customers.
    """
    picked = rng.choice(len(matrix), size=int(len(matrix) * NON_PERSONALISED_SHARE), replace=False)
    blank = matrix[picked].copy()
    blank[:, : len(spec.customer_features)] = np.nan
    return np.vstack([matrix, blank]), np.concatenate([labels, labels[picked]])


def fit_booster(
    spec: FeatureSpec,
    train: tuple[np.ndarray, np.ndarray],
    valid: tuple[np.ndarray, np.ndarray],
    params: dict[str, object],
    num_boost_round: int,
) -> lgb.Booster:
    """Fit LightGBM with early stopping on the validation window."""
    names = spec.feature_names
    train_set = lgb.Dataset(
        train[0],
        train[1],
        feature_name=names,
        categorical_feature=spec.categorical_features,
        free_raw_data=False,
    )
    valid_set = lgb.Dataset(valid[0], valid[1], reference=train_set)
    return lgb.train(
        params,
        train_set,
        num_boost_round=num_boost_round,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(30, verbose=False), lgb.log_evaluation(period=100)],
    )


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def configure_mlflow(settings: TrainingSettings) -> str:
    """Point MLflow at the configured store and return the experiment id."""
    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.get_experiment_by_name(settings.experiment_name)
    if experiment is not None:
        return str(experiment.experiment_id)
    settings.mlflow_artifact_root.mkdir(parents=True, exist_ok=True)
    return str(
        mlflow.create_experiment(
            settings.experiment_name,
            artifact_location=settings.mlflow_artifact_root.resolve().as_uri(),
        )
    )


def train_and_register(settings: TrainingSettings, catalog: Catalog) -> TrainResult:
    """The whole training step: join, split, fit, evaluate, log, register, alias."""
    started = time.perf_counter()
    decisions = load_decisions(settings.data_dir / "decisions.parquet")
    store = FeatureStore(repo_path=str(settings.feature_repo))
    spec = FeatureSpec(
        customer_features=tuple(feature_service_columns(store, settings.feature_service)),
        actions=tuple(a.id for a in catalog.actions),
    )
    log.info("joining %d decisions with Feast features at decision time", len(decisions))
    frame = join_features(settings.feature_repo, decisions, settings.feature_service)
    split = time_split(frame, settings.holdout_fraction)
    matrix = design_matrix(spec, frame, catalog)
    labels = frame["outcome"].to_numpy(dtype=np.float64)
    rng = np.random.default_rng(settings.seed)
    train_x, train_y = with_non_personalised_rows(
        matrix[split.train], labels[split.train], spec, rng
    )

    params = lightgbm_params(settings.seed)
    log.info(
        "training LightGBM on %d rows (validation %d, holdout %d)",
        len(train_x),
        int(split.valid.sum()),
        int(split.holdout.sum()),
    )
    booster = fit_booster(
        spec,
        (train_x, train_y),
        (matrix[split.valid], labels[split.valid]),
        params,
        settings.num_boost_round,
    )

    holdout_pred = booster.predict(matrix[split.holdout])
    metrics = {
        f"holdout_{k}": v
        for k, v in classification_metrics(labels[split.holdout], np.asarray(holdout_pred)).items()
    }
    latent_path = settings.data_dir / "ground_truth_latent.parquet"
    if latent_path.exists():
        log.info("evaluating policies against the simulator's ground truth")
        values = simulated_policy_values(
            frame[split.holdout],
            pd.read_parquet(latent_path),
            catalog,
            spec,
            lambda x: np.asarray(booster.predict(x)),
            settings.exploration,
            catalog.policy.no_action_threshold,
        )
        metrics |= {f"holdout_{k}": v for k, v in values.items()}
    metrics["train_seconds"] = time.perf_counter() - started

    sample = pd.DataFrame(matrix[:50], columns=spec.feature_names)
    run_id, model_version = _log_and_register(
        settings, spec, booster, params, frame, split, metrics, sample
    )
    return TrainResult(run_id, model_version, metrics)


def _log_and_register(
    settings: TrainingSettings,
    spec: FeatureSpec,
    booster: lgb.Booster,
    params: dict[str, object],
    frame: pd.DataFrame,
    split: TimeSplit,
    metrics: dict[str, float],
    sample: pd.DataFrame,
) -> tuple[str, str]:
    """Log params, tags, metrics and the model; register it and point the alias at it."""
    experiment_id = configure_mlflow(settings)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_params({f"lgb_{k}": v for k, v in params.items()})
        mlflow.log_params(
            {
                "num_boost_round": settings.num_boost_round,
                "best_iteration": booster.best_iteration,
                "rows_train": int(split.train.sum()),
                "rows_valid": int(split.valid.sum()),
                "rows_holdout": int(split.holdout.sum()),
                "data_start": str(frame["event_timestamp"].min()),
                "valid_start": str(split.valid_start),
                "holdout_start": str(split.holdout_start),
                "data_end": str(frame["event_timestamp"].max()),
                "feature_service": settings.feature_service,
            }
        )
        mlflow.set_tags(
            {
                "git_commit": _git_commit(),
                "lightgbm_version": version("lightgbm"),
                "feast_version": version("feast"),
                "mlflow_version": version("mlflow"),
                "seed": str(settings.seed),
            }
        )
        mlflow.log_metrics(metrics)
        info = mlflow.lightgbm.log_model(
            booster,
            name=MODEL_ARTIFACT,
            signature=infer_signature(sample, booster.predict(sample.to_numpy())),
            registered_model_name=settings.model_name,
            metadata={"feature_spec": spec.to_dict()},
            # Explicit requirements: MLflow's inference runs a subprocess that costs ~7 s.
            pip_requirements=[f"{p}=={version(p)}" for p in ("lightgbm", "numpy", "pandas")],
        )
    model_version = str(info.registered_model_version)
    client = MlflowClient()
    client.set_registered_model_alias(settings.model_name, settings.model_alias, model_version)
    log.info(
        "registered %s version %s as @%s", settings.model_name, model_version, settings.model_alias
    )
    return run.info.run_id, model_version
