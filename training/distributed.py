# dask and distributed are partly untyped: calls into them are accepted as they are.
# mypy: disable-error-code="no-untyped-call"
"""Distributed training on a Dask cluster: the same join, featurisation and binary model.

The decision log (a few narrow columns) is read and split by time on the client, then cut
into customer-hash partitions. Each partition is joined point-in-time with Feast's offline
store and featurised on a worker by the single-machine functions (`join_features`,
`design_matrix`), and the binary family is fitted with `lightgbm.dask` (data-parallel
trees). Workers must reach the Feast repo at the same path (a shared file system, or
the production profile's stores).

Early stopping: LightGBM evaluates a validation set on each worker's local rows only, so
`lgb.early_stopping` could stop workers at different rounds and hang the others. The
model is fitted for `NBA_NUM_BOOST_ROUND` rounds, then the validation log loss after every
round is summed over the validation partitions on the workers and the single-machine rule
(stop 30 rounds without improvement, keep the best round) picks `best_iteration`.

The ranker family is not distributed: `DaskLGBMRanker` supports no early stopping or
evaluation groups across workers, and the binary family is the one that wins on the
simulator's data (README, "Results on the simulator's holdout").
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import dask.array as da
import lightgbm as lgb
import numpy as np
import pandas as pd
from dask.delayed import delayed
from distributed import Client, Future, LocalCluster, as_completed
from lightgbm.dask import DaskLGBMClassifier

from service.catalog import Catalog
from service.features import FeatureSpec
from training.dataset import (
    TimeSplit,
    TrainingSet,
    build_training_set,
    decision_history,
    design_matrix,
    join_features,
    time_split,
)
from training.models import EARLY_STOPPING_ROUNDS, binary_params
from training.settings import TrainingSettings
from training.train import (
    Candidate,
    evaluate,
    fit_binary_candidate,
    with_non_personalised_rows,
)

log = logging.getLogger(__name__)

TRAIN, VALID, HOLDOUT = 0, 1, 2
Featurised = tuple[TrainingSet, np.ndarray]
Rows = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class DistributedRun:
    """What a distributed fit produced: the joined set (gathered for evaluation) and the model."""

    data: TrainingSet
    split: TimeSplit
    matrix: np.ndarray
    candidate: Candidate
    fit_seconds: float


@contextmanager
def dask_client(settings: TrainingSettings) -> Iterator[Client]:
    """A client of `NBA_DASK_SCHEDULER`, or of a local cluster (processes x 1 thread) if unset."""
    if settings.dask_scheduler:
        log.info("connecting to the Dask scheduler at %s", settings.dask_scheduler)
        with Client(settings.dask_scheduler) as client:
            yield client
        return
    log.info("starting a local Dask cluster: %d worker processes x 1 thread", settings.dask_workers)
    with (
        LocalCluster(
            n_workers=settings.dask_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            # Import Feast, MLflow and this module before the worker registers: imported while
            # unpickling the first task instead, they block its event loop long enough (tens of
            # seconds on a loaded machine) for the scheduler to drop the worker.
            preload=[__name__],
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def customer_partitions(history: pd.DataFrame, n: int) -> list[pd.DataFrame]:
    """Decisions cut by a stable hash of the customer ID (a customer stays in one partition)."""
    hashes = pd.util.hash_pandas_object(history["customer_id"].astype(str), index=False)
    buckets = hashes.to_numpy() % np.uint64(n)
    return [history[buckets == i] for i in range(n) if (buckets == i).any()]


def featurise_partition(
    settings: TrainingSettings, catalog: Catalog, part: pd.DataFrame
) -> Featurised:
    """One partition joined point-in-time and featurised, as on a single machine."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Feast's DuckDB backend, per call
        data = join_features(settings, catalog, part)
    return data, design_matrix(data.spec, data.frame, catalog)


def model_rows(featurised: Featurised, roles: np.ndarray, role: int, no_action: str) -> Rows:
    """Matrix rows and outcomes of a partition's decisions in `role` that showed an action."""
    data, matrix = featurised
    keep = (roles == role) & (data.frame["action_id"] != no_action).to_numpy()
    return matrix[keep], data.frame["outcome"].to_numpy(dtype=np.float64)[keep]


def training_rows(featurised: Featurised, roles: np.ndarray, no_action: str, seed: int) -> Rows:
    """A partition's training rows plus its share of non-personalised copies."""
    x, y = model_rows(featurised, roles, TRAIN, no_action)
    rng = np.random.default_rng(seed)
    return with_non_personalised_rows(x, y, featurised[0].spec, rng)


def iteration_losses(booster: lgb.Booster, rows: Rows) -> np.ndarray:
    """Summed binary log loss of `rows` after each boosting round (LightGBM's clipping)."""
    x, y = rows
    raw = np.zeros(len(y))
    losses = np.zeros(booster.current_iteration())
    if not len(y):
        return losses
    for i in range(len(losses)):
        raw += np.asarray(booster.predict(x, raw_score=True, start_iteration=i, num_iteration=1))
        p = np.clip(1.0 / (1.0 + np.exp(-raw)), 1e-15, 1 - 1e-15)
        losses[i] = -float(np.sum(y * np.log(p) + (1 - y) * np.log(1 - p)))
    return losses


def best_iteration(losses: np.ndarray, patience: int = EARLY_STOPPING_ROUNDS) -> int:
    """1-based best round under `lgb.early_stopping(patience)`: stop after `patience` idle ones."""
    best, best_at = np.inf, 0
    for i, loss in enumerate(losses):
        if loss < best:
            best, best_at = float(loss), i
        elif i - best_at >= patience:
            break
    return best_at + 1


def _join(
    client: Client, settings: TrainingSettings, catalog: Catalog, parts: list[pd.DataFrame]
) -> list[Future[Any]]:
    """Submit the partitions' joins and report each as it finishes."""
    futures = [
        client.submit(featurise_partition, settings, catalog, part, pure=False, **_on(client, i))
        for i, part in enumerate(parts)
    ]
    sizes = [client.submit(lambda f: len(f[1]), f) for f in futures]
    for done, (_, rows) in enumerate(as_completed(sizes, with_results=True), start=1):
        log.info("joined and featurised partition %d/%d (%d decisions)", done, len(parts), rows)
    return futures


def _on(client: Client, i: int) -> dict[str, object]:
    """Placement of partition `i`: round-robin over the workers by address, so a run is
    repeatable (which rows a worker holds changes its bins and bagging draws)."""
    workers = sorted(client.scheduler_info()["workers"])
    return {"workers": [workers[i % len(workers)]], "allow_other_workers": True}


def stack_rows(parts: list[Rows]) -> Rows:
    """Several partitions' rows as one block, in partition order."""
    return np.vstack([x for x, _ in parts]), np.concatenate([y for _, y in parts])


def _one_block_per_worker(client: Client, rows: list[Future[Any]]) -> list[Future[Any]]:
    """Each worker's partitions stacked in partition order: LightGBM then gets one part per
    worker, in the same row order every run (bagging draws depend on it)."""
    workers = sorted(client.scheduler_info()["workers"])
    groups: dict[int, list[Future[Any]]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(i % len(workers), []).append(r)
    return [
        client.submit(stack_rows, group, workers=[workers[w]], allow_other_workers=True)
        for w, group in sorted(groups.items())
    ]


def _dask_rows(client: Client, rows: list[Future[Any]], width: int) -> tuple[da.Array, da.Array]:
    """Per-partition (x, y) futures as one dask matrix and label vector (empty parts dropped)."""
    lengths = client.gather([client.submit(lambda r: len(r[1]), r) for r in rows])
    kept = [(r, n) for r, n in zip(rows, lengths, strict=True) if n]
    x = [da.from_delayed(delayed(r)[0], shape=(n, width), dtype=np.float64) for r, n in kept]
    y = [da.from_delayed(delayed(r)[1], shape=(n,), dtype=np.float64) for r, n in kept]
    return da.concatenate(x), da.concatenate(y)


def _gather_set(client: Client, futures: list[Future[Any]]) -> tuple[TrainingSet, np.ndarray]:
    """The joined partitions in the decision log's order: the single-machine frame and matrix."""
    parts: list[Featurised] = client.gather(futures)
    frame = pd.concat([data.frame for data, _ in parts])
    matrix = np.vstack([m for _, m in parts])
    order = np.argsort(frame.index.to_numpy(), kind="stable")
    first = parts[0][0]
    data = TrainingSet(frame.iloc[order].reset_index(drop=True), first.spec, first.source)
    return data, matrix[order]


def fit_on_cluster(client: Client, settings: TrainingSettings, catalog: Catalog) -> DistributedRun:
    """Join in partitions on the workers, fit the binary family with `lightgbm.dask`."""
    worker_settings = settings.model_copy(
        update={
            "feature_repo": settings.feature_repo.resolve(),
            "feature_store_yaml": settings.feature_store_yaml.resolve()
            if settings.feature_store_yaml
            else None,
        }
    )
    history = decision_history(settings)
    split = time_split(history, settings.holdout_fraction)
    roles = np.where(split.train, TRAIN, np.where(split.valid, VALID, HOLDOUT))
    parts = customer_partitions(history, settings.dask_partitions)
    workers = len(client.scheduler_info()["workers"])
    log.info(
        "%d decisions in %d customer partitions on %d Dask workers",
        len(history),
        len(parts),
        workers,
    )
    featurised = _join(client, worker_settings, catalog, parts)

    fit_started = time.perf_counter()
    spec: FeatureSpec = client.submit(lambda f: f[0].spec, featurised[0]).result()
    width = len(spec.feature_names)
    no_action = catalog.no_action.id
    part_roles = [roles[part.index.to_numpy()] for part in parts]
    train = [
        client.submit(training_rows, f, r, no_action, settings.seed + i, **_on(client, i))
        for i, (f, r) in enumerate(zip(featurised, part_roles, strict=True))
    ]
    valid = [
        client.submit(model_rows, f, r, VALID, no_action, **_on(client, i))
        for i, (f, r) in enumerate(zip(featurised, part_roles, strict=True))
    ]
    x, y = _dask_rows(client, _one_block_per_worker(client, train), width)
    params: dict[str, Any] = binary_params(settings.seed)
    log.info(
        "fitting the binary model with lightgbm.dask on %d rows for %d rounds",
        len(y),
        settings.num_boost_round,
    )
    model = DaskLGBMClassifier(client=client, n_estimators=settings.num_boost_round, **params)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Parameter n_jobs will be ignored")  # Dask sets threads
        model.fit(
            x,
            y,
            feature_name=spec.feature_names,
            categorical_feature=spec.categorical_features,
        )
    booster = model.booster_
    remote = client.scatter(booster, broadcast=True)
    losses = np.sum(client.gather([client.submit(iteration_losses, remote, v) for v in valid]), 0)
    booster.best_iteration = best_iteration(losses)
    log.info(
        "best round on the validation window: %d of %d (same early-stopping rule)",
        booster.best_iteration,
        booster.current_iteration(),
    )
    fit_seconds = time.perf_counter() - fit_started
    data, matrix = _gather_set(client, featurised)
    candidate = Candidate(
        "binary", booster, None, {**params, "tree_learner": "data", "dask_workers": workers}
    )
    return DistributedRun(data, split, matrix, candidate, fit_seconds)


def fit_distributed(settings: TrainingSettings, catalog: Catalog) -> DistributedRun:
    """`fit_on_cluster` on the configured cluster (`NBA_DASK_SCHEDULER`, else a local one)."""
    with dask_client(settings) as client:
        return fit_on_cluster(client, settings, catalog)


@dataclass(frozen=True)
class Comparison:
    """Holdout figures of the single-machine and the Dask binary model on the same data.

    `metrics` are `evaluate`'s, with the families named `single` and `dask`; the single
    model is the reward model of the doubly robust estimates of both.
    """

    metrics: dict[str, float]
    single_seconds: float
    dask_seconds: float
    single_best_iteration: int
    dask_best_iteration: int
    rows: int
    max_feature_difference: float

    def summary(self) -> str:
        """One line per model: AUC, log loss, calibration error, DR value with its 95 % interval,
        true value (simulated data), best round and seconds."""
        lines = []
        for name, seconds, rounds in (
            ("single", self.single_seconds, self.single_best_iteration),
            ("dask", self.dask_seconds, self.dask_best_iteration),
        ):
            m = self.metrics
            true = m.get(f"policy/{name}/true_value", float("nan"))
            lines.append(
                f"{name:6s} AUC {m[f'model_{name}/auc']:.4f}  log loss "
                f"{m[f'model_{name}/log_loss']:.4f}  ECE {m[f'model_{name}/calibration_error']:.4f}"
                f"  DR {m[f'policy/{name}/dr']:.2f} EUR [{m[f'policy/{name}/dr_lo']:.2f}, "
                f"{m[f'policy/{name}/dr_hi']:.2f}] (true {true:.2f})"
                f"  best round {rounds}  {seconds:.1f} s"
            )
        return "\n".join(lines)


def compare_with_single_machine(
    client: Client, settings: TrainingSettings, catalog: Catalog
) -> Comparison:
    """Fit the binary family on one machine and on the cluster; evaluate both on one holdout."""
    started = time.perf_counter()
    data = build_training_set(settings, catalog)
    split = time_split(data.frame, settings.holdout_fraction)
    matrix = design_matrix(data.spec, data.frame, catalog)
    single = fit_binary_candidate(data, split, matrix, catalog, settings)
    single_seconds = time.perf_counter() - started

    started = time.perf_counter()
    run = fit_on_cluster(client, settings, catalog)
    dask_seconds = time.perf_counter() - started

    if run.matrix.shape != matrix.shape:
        raise AssertionError(f"joined sets differ: {run.matrix.shape} vs {matrix.shape}")
    both_nan = np.isnan(run.matrix) & np.isnan(matrix)
    difference = np.nan_to_num(np.abs(run.matrix - matrix), nan=np.inf)  # NaN on one side only
    difference[both_nan] = 0.0
    candidates = [
        Candidate("single", single.booster, None, single.params),
        Candidate("dask", run.candidate.booster, None, run.candidate.params),
    ]
    metrics, _ = evaluate(data, split, matrix, catalog, candidates, None, settings)
    return Comparison(
        metrics,
        single_seconds,
        dask_seconds,
        single.booster.best_iteration,
        run.candidate.booster.best_iteration,
        len(matrix),
        float(difference.max()) if difference.size else 0.0,
    )
