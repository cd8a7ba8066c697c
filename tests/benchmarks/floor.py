"""The in-process floor of one decision, each step timed alone, and the naive stack beside
it (Feast `to_df`, `mlflow.pyfunc` on a DataFrame, LightGBM's default threads)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from service.arbitration import expected_values
from service.catalog_holder import CatalogVersion, TouchpointCandidates
from service.contact_policy import contact_drops
from service.decision_log import DecisionRecord, LoggedCandidate
from service.engine import DecisionEngine, _Scored
from service.features import FeatureSpec, customer_vector, featurize
from service.reasons import top_reasons
from service.rules import Consent, pre_scoring_drop
from service.runtime import Runtime
from service.vocabulary import Touchpoint

Timings = dict[str, list[int]]


def summarise(samples_ns: list[int]) -> dict[str, float]:
    """p50, p95, p99 and mean in microseconds."""
    values = np.asarray(samples_ns, dtype=float) / 1000.0
    return {
        "p50_us": float(np.percentile(values, 50)),
        "p95_us": float(np.percentile(values, 95)),
        "p99_us": float(np.percentile(values, 99)),
        "mean_us": float(values.mean()),
    }


def candidate_matrix(
    spec: FeatureSpec,
    values: dict[str, Any] | None,
    candidates: TouchpointCandidates,
    touchpoint: Touchpoint,
) -> np.ndarray:
    """The model input of every candidate of the touchpoint, as the engine builds it."""
    n = len(candidates.ids)
    return featurize(
        spec,
        customer_vector(spec, values),
        candidates.ids,
        candidates.types,
        [touchpoint.value] * n,
    )


@contextmanager
def timed(timings: Timings, name: str) -> Iterator[None]:
    """Add the wall time of the block, in nanoseconds, to `timings[name]`."""
    started = time.perf_counter_ns()
    yield
    timings.setdefault(name, []).append(time.perf_counter_ns() - started)


def measure_floor(
    runtime: Runtime, customers: list[str], touchpoint: Touchpoint, decisions: int
) -> dict[str, dict[str, float]]:
    """Each step of a decision alone, then whole `decide()` calls, on the running stack."""
    version: CatalogVersion = runtime.catalogs.current
    candidates = version.by_touchpoint[touchpoint]
    model = runtime.models.current.champion
    spec = model.spec
    today = datetime.now(UTC).date()
    timings: Timings = {}
    n = len(candidates.ids)
    read, featurise, predict = "feature read", f"featurise ({n} candidates)", f"predict ({n} rows)"
    for i in range(decisions):
        customer = customers[i % len(customers)]
        with timed(timings, read):
            values = runtime.features.read(customer)
        with timed(timings, "consent + eligibility rules"):
            consent = Consent.from_features(values)
            for action in candidates.actions:
                pre_scoring_drop(action, values, consent, touchpoint, today)
        with timed(timings, featurise):
            matrix = candidate_matrix(spec, values, candidates, touchpoint)
        with timed(timings, predict):
            p = model.predict(matrix)
        expected = expected_values(p * candidates.levers, candidates.values, candidates.costs)
        scored = _Scored(list(candidates.actions), matrix, p, expected)
        with timed(timings, "arbitration"):
            DecisionEngine._arbitrate(version, scored, list(range(n)))
        with timed(timings, "contact policy + log write (1 txn)"):
            _log(runtime, customer, version, touchpoint)
        if values is not None:
            with timed(timings, "reasons (pred_contrib)"):
                top_reasons(model, matrix[:1], values, runtime.features.descriptions)
        with timed(timings, "decide(), reasons on"):
            runtime.engine.decide(customer, touchpoint)
        with timed(timings, "decide(), reasons off"):
            runtime.engine.decide(customer, touchpoint, with_reasons=False)
    result = {name: summarise(samples) for name, samples in timings.items()}
    steps = (read, featurise, predict, "arbitration")
    result["floor: read + featurise + predict + arbitrate"] = {
        key: sum(result[s][key] for s in steps) for key in ("p50_us", "p95_us", "p99_us", "mean_us")
    }
    return result


def _log(runtime: Runtime, customer: str, version: CatalogVersion, touchpoint: Touchpoint) -> None:
    with runtime.decision_log.customer_session(customer) as session:
        now = time.time()
        history = session.history(now - version.lookback)
        actions = version.by_touchpoint[touchpoint].actions
        contact_drops(version.catalog, actions, history, now)
        session.append(
            DecisionRecord(
                decision_id=str(uuid.uuid4()),
                created_at=now,
                customer_id=customer,
                touchpoint=touchpoint.value,
                model_name="bench",
                model_version="0",
                personalised=True,
                chosen_action="no_action",
                selection_probability=1.0,
                explored=False,
                candidates=tuple(LoggedCandidate(a.id, 0.1, 1.0) for a in actions),
            )
        )


def measure_naive(
    runtime: Runtime, customers: list[str], touchpoint: Touchpoint, decisions: int
) -> dict[str, dict[str, float]]:
    """The same scoring the way a first version would: Feast `to_df`, an `mlflow.pyfunc`
    model on a DataFrame, LightGBM with its default threads, and `Booster.predict` on one
    thread, for scores and for a row's contributions (the calls `SmallBatchPredictor`
    makes without the wrapper); and Feast's `to_dict` read, which the service makes on the
    SQLite online store (on Redis it reads the hash itself)."""
    settings = runtime.settings
    store = runtime.features._store  # the same Feast store, read the convenient way
    refs = runtime.features._refs
    model = runtime.models.current.champion
    pyfunc = mlflow.pyfunc.load_model(str(settings.model_cache_dir / model.name / model.version))
    candidates = runtime.catalogs.current.by_touchpoint[touchpoint]
    n = len(candidates.ids)
    spec = model.spec
    timings: Timings = {}
    for i in range(decisions):
        customer = customers[i % len(customers)]
        started = time.perf_counter_ns()
        frame = store.get_online_features(
            features=refs, entity_rows=[{"customer_id": customer}]
        ).to_df()
        read_done = time.perf_counter_ns()
        values = {str(k): v for k, v in frame.iloc[0].items()}
        matrix = candidate_matrix(spec, values, candidates, touchpoint)
        inputs = pd.DataFrame(matrix, columns=spec.feature_names)
        pyfunc.predict(inputs)
        done = time.perf_counter_ns()
        model.booster.predict(matrix)  # default threads
        threads_done = time.perf_counter_ns()
        # Side by side, both warm: the wrapper and the prepared call LoadedModel makes.
        with timed(timings, f"booster.predict, 1 thread ({n} rows)"):
            model.booster.predict(matrix, num_threads=1)
        with timed(timings, f"LoadedModel.predict, same position ({n} rows)"):
            model.predict(matrix)
        with timed(timings, "booster.predict(pred_contrib=True), 1 thread (1 row)"):
            model.booster.predict(matrix[:1], pred_contrib=True, num_threads=1)
        with timed(timings, "LoadedModel.contributions, same position (1 row)"):
            model.contributions(matrix[:1])
        wrapped_done = time.perf_counter_ns()
        store.get_online_features(features=refs, entity_rows=[{"customer_id": customer}]).to_dict()
        timings.setdefault("Feast get_online_features().to_dict()", []).append(
            time.perf_counter_ns() - wrapped_done
        )
        timings.setdefault("naive feature read (to_df)", []).append(read_done - started)
        timings.setdefault(f"naive featurise + pyfunc predict ({n} rows)", []).append(
            done - read_done
        )
        timings.setdefault("naive read + featurise + pyfunc predict", []).append(done - started)
        timings.setdefault(f"booster.predict, default threads ({n} rows)", []).append(
            threads_done - done
        )
    return {name: summarise(samples) for name, samples in timings.items()}
