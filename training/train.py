"""A training run: build the set, fit both model families, evaluate, log, register a challenger."""

from __future__ import annotations

import logging
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from importlib.metadata import version
from pathlib import Path

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature

from service.calibration import Calibration
from service.catalog import Catalog
from service.errors import ModelLoadError
from service.features import FeatureSpec
from service.model import LoadedModel, load_registered_model
from service.vocabulary import ModelRole
from training.cards import card_inputs, publish_cards
from training.dataset import TimeSplit, TrainingSet, build_training_set, design_matrix, time_split
from training.evaluation import evaluate_policies, ranking_on_logs, segments
from training.metrics import classification_report
from training.models import binary_params, fit_binary, fit_calibration, fit_ranker, ranker_params
from training.policies import (
    Block,
    Policy,
    Scorer,
    candidate_grid,
    greedy,
    memoised,
    most_popular,
    rules_only,
    uniform_random,
)
from training.registry import COMPARED_WITH_TAG, alias_version, client_for
from training.settings import TrainingSettings
from training.simulated_truth import logging_policy, true_expected_values

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "model"
NON_PERSONALISED_SHARE = 0.05
FAMILIES = ("binary", "ranker")


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced."""

    run_id: str
    model_version: str
    family: str
    aliases: tuple[str, ...]
    metrics: dict[str, float]


@dataclass(frozen=True)
class Candidate:
    """One fitted model family, ready to score and to register."""

    family: str
    booster: lgb.Booster
    calibration: Calibration | None
    params: dict[str, object]

    def score(self, matrix: np.ndarray) -> np.ndarray:
        """Acceptance probabilities."""
        raw = np.asarray(self.booster.predict(matrix), dtype=np.float64)
        return self.calibration.apply(raw) if self.calibration else raw

    @cached_property
    def grid_score(self) -> Scorer:
        """`score` for candidate-grid matrices, each scored once however many reports read it."""
        return memoised(self.score)


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


def fit_binary_candidate(
    data: TrainingSet,
    split: TimeSplit,
    matrix: np.ndarray,
    catalog: Catalog,
    settings: TrainingSettings,
) -> Candidate:
    """Fit the binary model on decisions that showed an action (validation: early stopping)."""
    frame, spec = data.frame, data.spec
    labels = frame["outcome"].to_numpy(dtype=np.float64)
    shown = (frame["action_id"] != catalog.no_action.id).to_numpy()
    train, valid = split.train & shown, split.valid & shown
    rng = np.random.default_rng(settings.seed)
    seed = settings.seed
    log.info("fitting the binary model on %d decisions (validation %d)", train.sum(), valid.sum())
    binary = fit_binary(
        spec,
        with_non_personalised_rows(matrix[train], labels[train], spec, rng),
        (matrix[valid], labels[valid]),
        seed,
        settings.num_boost_round,
    )
    return Candidate("binary", binary, None, binary_params(seed))


def fit_candidates(
    data: TrainingSet, split: TimeSplit, catalog: Catalog, settings: TrainingSettings
) -> tuple[list[Candidate], np.ndarray]:
    """Fit the binary model and the calibrated ranker on decisions that showed an action."""
    frame, spec = data.frame, data.spec
    matrix = design_matrix(spec, frame, catalog)
    binary = fit_binary_candidate(data, split, matrix, catalog, settings)
    labels = frame["outcome"].to_numpy(dtype=np.float64)
    shown = (frame["action_id"] != catalog.no_action.id).to_numpy()
    train, valid = split.train & shown, split.valid & shown
    rounds, seed = settings.num_boost_round, settings.seed
    log.info("fitting the ranker (XE-NDCG), grouped by customer, and its calibration map")
    groups = frame["customer_id"].astype(str)
    ranker = fit_ranker(
        spec,
        (matrix[train], labels[train], groups[train]),
        (matrix[valid], labels[valid], groups[valid]),
        seed,
        rounds,
    )
    calibration = fit_calibration(np.asarray(ranker.predict(matrix[valid])), labels[valid])
    return [binary, Candidate("ranker", ranker, calibration, ranker_params(seed))], matrix


def _current_champion(settings: TrainingSettings, spec: FeatureSpec) -> LoadedModel | None:
    try:
        champion = load_registered_model(
            settings.mlflow_tracking_uri,
            settings.model_name,
            ModelRole.CHAMPION,
            settings.model_cache_dir,
        )
    except ModelLoadError:
        return None
    if champion.spec != spec:
        log.warning("champion version %s uses other features: not compared", champion.version)
        return None
    return champion


def policy_sample(holdout: pd.DataFrame, size: int, rng: np.random.Generator) -> pd.DataFrame:
    """The holdout, or a uniform random sample of `size` of its decisions (in time order).

    Valuing policies scores every candidate of every decision: 25 times the holdout's rows.
    """
    if len(holdout) <= size:
        return holdout
    picked = np.sort(rng.choice(len(holdout), size=size, replace=False))
    return holdout.iloc[picked].reset_index(drop=True)


def evaluate(
    data: TrainingSet,
    split: TimeSplit,
    matrix: np.ndarray,
    catalog: Catalog,
    candidates: list[Candidate],
    champion: LoadedModel | None,
    settings: TrainingSettings,
) -> tuple[dict[str, float], list[Block]]:
    """Holdout metrics of both families, ranking on logs, and every policy's value."""
    frame = data.frame
    holdout = frame[split.holdout].reset_index(drop=True)
    rng = np.random.default_rng(settings.seed)
    outcomes = holdout["outcome"].to_numpy(dtype=np.float64)
    shown = (holdout["action_id"] != catalog.no_action.id).to_numpy()
    slices = {k: v[shown] for k, v in segments(holdout).items()}
    valued = policy_sample(holdout, settings.policy_eval_decisions, rng)
    blocks = candidate_grid(valued, data.spec, catalog, datetime.now(UTC).date())
    metrics: dict[str, float] = {}
    for candidate in candidates:
        predicted = candidate.score(matrix[split.holdout][shown])
        report = classification_report(
            outcomes[shown], predicted, slices, rng, settings.bootstrap_resamples
        )
        report |= ranking_on_logs(blocks, candidate.grid_score)
        metrics |= {f"model_{candidate.family}/{k}": v for k, v in report.items()}

    threshold = catalog.policy.no_action_threshold
    policies: dict[str, Policy] = {c.family: greedy(c.grid_score, threshold) for c in candidates}
    if champion is not None:  # scored here with every core, not single-threaded as served
        scored = Candidate("champion", champion.booster, champion.calibration, {})
        policies["champion"] = greedy(scored.grid_score, threshold)
    policies |= {
        "rules": rules_only(threshold),
        "popular": most_popular(frame[split.train]),
        "random": uniform_random,
    }
    latent_path = settings.data_dir / "ground_truth_latent.parquet"
    truth = None
    if data.source == "feast" and latent_path.exists():
        log.info("simulated data: adding the true value of every policy and the oracle")
        latent = pd.read_parquet(latent_path)
        truth = true_expected_values(latent, catalog)
        policies["logging"] = logging_policy(settings.exploration)
    reward_model: Scorer = candidates[0].grid_score
    log.info(
        "valuing %d policies on %d of %d holdout decisions (IPS, SNIPS, DR)",
        len(policies),
        len(valued),
        len(holdout),
    )
    values = evaluate_policies(
        valued, blocks, catalog, policies, reward_model, rng, truth, settings.bootstrap_resamples
    )
    metrics |= {f"policy/{k}": v for k, v in values.items()}
    return metrics, blocks


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
    if uri.startswith(("http://", "https://")):  # a tracking server stores the artifacts
        return str(mlflow.create_experiment(settings.experiment_name))
    settings.mlflow_artifact_root.mkdir(parents=True, exist_ok=True)
    return str(
        mlflow.create_experiment(
            settings.experiment_name,
            artifact_location=settings.mlflow_artifact_root.resolve().as_uri(),
        )
    )


def headline(metrics: dict[str, float], winner: str) -> dict[str, float]:
    """The chosen family's figures under stable names (`candidate/...`) for gates and cards."""
    chosen = {
        f"candidate/{k.removeprefix(f'model_{winner}/')}": v
        for k, v in metrics.items()
        if k.startswith(f"model_{winner}/")
    }
    chosen |= {
        f"candidate/{k.removeprefix(f'policy/{winner}/')}": v
        for k, v in metrics.items()
        if k.startswith(f"policy/{winner}/")
    }
    chosen |= {
        f"champion/{k.removeprefix('policy/champion/')}": v
        for k, v in metrics.items()
        if k.startswith("policy/champion/")
    }
    return chosen


def train_and_register(
    settings: TrainingSettings, catalog: Catalog, dask: bool = False
) -> TrainResult:
    """Join, split, fit both families, evaluate, pick the winner by policy value, register it.

    With `dask`, the join and the binary family run in partitions on a Dask cluster
    (`training.distributed`); evaluation and registration are the same.
    """
    started = time.perf_counter()
    if dask:
        from training.distributed import fit_distributed  # imports distributed only when asked

        run = fit_distributed(settings, catalog)
        data, split, matrix = run.data, run.split, run.matrix
        candidates, fit_seconds = [run.candidate], run.fit_seconds
    else:
        data = build_training_set(settings, catalog)
        split = time_split(data.frame, settings.holdout_fraction)
        fit_started = time.perf_counter()
        candidates, matrix = fit_candidates(data, split, catalog, settings)
        fit_seconds = time.perf_counter() - fit_started
    champion = _current_champion(settings, data.spec)
    metrics, blocks = evaluate(data, split, matrix, catalog, candidates, champion, settings)
    winner = max(candidates, key=lambda c: metrics[f"policy/{c.family}/dr"])
    log.info(
        "policy value (doubly robust): %s EUR per decision: %s wins",
        ", ".join(f"{c.family} {metrics[f'policy/{c.family}/dr']:.2f}" for c in candidates),
        winner.family,
    )
    metrics |= headline(metrics, winner.family)
    metrics["train_seconds"] = time.perf_counter() - started
    metrics["fit_seconds"] = fit_seconds
    run_id, model_version, aliases = _log_and_register(
        settings, data, split, winner, metrics, champion, matrix[:50]
    )
    inputs = card_inputs(
        settings, data, split, matrix, catalog, winner.booster, winner.grid_score, blocks
    )
    publish_cards(settings, model_version, inputs, champion)
    return TrainResult(run_id, model_version, winner.family, aliases, metrics)


def _log_and_register(
    settings: TrainingSettings,
    data: TrainingSet,
    split: TimeSplit,
    winner: Candidate,
    metrics: dict[str, float],
    champion: LoadedModel | None,
    sample_rows: np.ndarray,
) -> tuple[str, str, tuple[str, ...]]:
    """Log params, tags, metrics and the winning model; register it as challenger."""
    experiment_id = configure_mlflow(settings)
    frame = data.frame
    sample = pd.DataFrame(sample_rows, columns=data.spec.feature_names)
    metadata: dict[str, object] = {
        "feature_spec": data.spec.to_dict(),
        "model_family": winner.family,
    }
    if winner.calibration:
        metadata["calibration"] = winner.calibration.to_dict()
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_params({f"lgb_{k}": v for k, v in winner.params.items()})
        mlflow.log_params(
            {
                "model_family": winner.family,
                "num_boost_round": settings.num_boost_round,
                "best_iteration": winner.booster.best_iteration,
                "rows_train": int(split.train.sum()),
                "rows_valid": int(split.valid.sum()),
                "rows_holdout": int(split.holdout.sum()),
                "rows_policy_eval": min(int(split.holdout.sum()), settings.policy_eval_decisions),
                "feature_source": data.source,
                "data_start": str(frame["event_timestamp"].min()),
                "valid_start": str(split.valid_start),
                "holdout_start": str(split.holdout_start),
                "data_end": str(frame["event_timestamp"].max()),
                "feature_service": settings.feature_service,
                "training_log": str(settings.training_log),
                "seed": settings.seed,
            }
        )
        mlflow.set_tags(
            {
                "git_commit": _git_commit(),
                "lightgbm_version": version("lightgbm"),
                "feast_version": version("feast"),
                "mlflow_version": version("mlflow"),
                "numpy_version": version("numpy"),
                "pandas_version": version("pandas"),
                "scikit_learn_version": version("scikit-learn"),
                "seed": str(settings.seed),
            }
        )
        mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
        info = mlflow.lightgbm.log_model(
            winner.booster,
            name=MODEL_ARTIFACT,
            signature=infer_signature(
                sample, np.asarray(winner.booster.predict(sample.to_numpy()))
            ),
            registered_model_name=settings.model_name,
            metadata=metadata,
            # Explicit requirements: MLflow's inference runs a subprocess that costs ~7 s.
            pip_requirements=[f"{p}=={version(p)}" for p in ("lightgbm", "numpy", "pandas")],
        )
    model_version = str(info.registered_model_version)
    client = client_for(settings)
    client.set_model_version_tag(
        settings.model_name,
        model_version,
        COMPARED_WITH_TAG,
        champion.version if champion else "none",
    )
    client.set_model_version_tag(settings.model_name, model_version, "model_family", winner.family)
    client.set_registered_model_alias(settings.model_name, ModelRole.CHALLENGER, model_version)
    aliases: list[str] = [ModelRole.CHALLENGER.value]
    if alias_version(client, settings.model_name, ModelRole.CHAMPION) is None:
        client.set_registered_model_alias(settings.model_name, ModelRole.CHAMPION, model_version)
        aliases.append(ModelRole.CHAMPION.value)
    log.info(
        "registered %s version %s as %s",
        settings.model_name,
        model_version,
        " and ".join(f"@{a}" for a in aliases),
    )
    return run.info.run_id, model_version, tuple(aliases)
