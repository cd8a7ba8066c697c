"""What one decision costs in-process, step by step, on the stack `make demo` built.

Run on purpose (`make bench`), never as a test: it prints p50/p95/p99 per step in
microseconds. The decision log goes to a temporary file so the demo's log stays clean.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from service.contact_policy import contact_drops
from service.decision_log import DecisionRecord, LoggedCandidate
from service.features import customer_vector, featurize
from service.reasons import top_reasons
from service.rules import Consent, pre_scoring_drop
from service.runtime import build_runtime
from service.settings import ServiceSettings
from service.vocabulary import Touchpoint


def percentiles(samples_ns: list[int]) -> tuple[float, float, float]:
    """p50, p95, p99 in microseconds."""
    values = np.array(samples_ns) / 1000.0
    return tuple(float(np.percentile(values, q)) for q in (50, 95, 99))  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument(
        "--touchpoint", default="call_center", choices=[t.value for t in Touchpoint]
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)

    base = ServiceSettings()
    ids = pd.read_parquet(
        base.feature_repo / "data" / "customer_profile.parquet", columns=["customer_id"]
    )["customer_id"].tolist()
    touchpoint = Touchpoint(args.touchpoint)
    with tempfile.TemporaryDirectory() as tmp:
        settings = base.model_copy(
            update={"decision_log_path": Path(tmp) / "log.db", "catalog_reload_seconds": 0.0}
        )
        runtime = build_runtime(settings)
        champion = runtime.models.current.champion
        engine, version = runtime.engine, runtime.catalogs.current
        candidates = version.by_touchpoint[touchpoint]
        spec = champion.spec
        steps: dict[str, list[int]] = {
            k: []
            for k in (
                "feature read (Feast online, 1 call)",
                "consent + eligibility rules",
                "featurise + predict",
                "contact policy + log write (1 txn)",
                "reasons (pred_contrib)",
                "decide(), reasons on",
                "decide(), reasons off",
            )
        }
        today = datetime.now(UTC).date()
        clock = time.perf_counter_ns
        for i in range(args.decisions):
            customer = ids[i % len(ids)]
            t0 = clock()
            values = runtime.features.read(customer)
            t1 = clock()
            consent = Consent.from_features(values)
            kept = [
                j
                for j, action in enumerate(candidates.actions)
                if pre_scoring_drop(action, values, consent, touchpoint, today) is None
            ]
            t2 = clock()
            matrix = featurize(
                spec,
                customer_vector(spec, values),
                [candidates.ids[j] for j in kept],
                [candidates.types[j] for j in kept],
                [touchpoint.value] * len(kept),
            )
            if kept:
                champion.predict(matrix)
            t3 = clock()
            with runtime.decision_log.customer_session(customer) as session:
                now = time.time()
                history = session.history(now - version.lookback)
                contact_drops(version.catalog, [candidates.actions[j] for j in kept], history, now)
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
                        candidates=tuple(
                            LoggedCandidate(candidates.ids[j], 0.1, 1.0) for j in kept
                        ),
                    )
                )
            t4 = clock()
            steps["feature read (Feast online, 1 call)"].append(t1 - t0)
            steps["consent + eligibility rules"].append(t2 - t1)
            steps["featurise + predict"].append(t3 - t2)
            steps["contact policy + log write (1 txn)"].append(t4 - t3)
            if kept and values is not None:
                t5 = clock()
                top_reasons(
                    champion,
                    matrix[:1],
                    values,
                    runtime.features.descriptions,
                )
                steps["reasons (pred_contrib)"].append(clock() - t5)
            t6 = clock()
            engine.decide(customer, touchpoint)
            t7 = clock()
            engine.decide(customer, touchpoint, with_reasons=False)
            steps["decide(), reasons on"].append(t7 - t6)
            steps["decide(), reasons off"].append(clock() - t7)
        runtime.close()

    print(
        f"\nIn-process cost per decision at {touchpoint.value}, {len(candidates.ids)} candidates, "
        f"{args.decisions} decisions, {champion.name} v{champion.version}"
    )
    print(f"{'step':40} {'p50 us':>9} {'p95 us':>9} {'p99 us':>9} {'mean us':>9}")
    for name, samples in steps.items():
        p50, p95, p99 = percentiles(samples)
        mean = statistics.fmean(samples) / 1000.0
        print(f"{name:40} {p50:9.1f} {p95:9.1f} {p99:9.1f} {mean:9.1f}")


if __name__ == "__main__":
    main()
