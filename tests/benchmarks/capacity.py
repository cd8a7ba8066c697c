"""The capacity model of docs/scaling.md, computed from measured per-unit costs.

Reads benchmark results (`bench-results/bench-*.json`, newest first; each section is taken
from the newest file that has it) and prints, for a bank of a given size, the Redis memory,
API cores, PostgreSQL writes and storage, materialisation and training time it needs:

    .venv/bin/python -m tests.benchmarks.capacity --customers 10000000 \\
        --decisions-per-day 50000000

Every figure is a measured per-unit cost times a volume; the assumptions (peak factor,
feedback events per decision, linear scaling of training) are options and printed.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HTTP_WORKERS = 2  # the API's workers in every http run but the extra maximum runs
BULK_ENGINE_LABEL = "bulk Redis writer"  # the "engine" of materialise rows of the bulk engine

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class UnitCosts:
    """Per-unit costs read off one or more benchmark runs."""

    redis_bytes_per_customer: float
    materialise_customers_per_s: float
    decisions_per_s_per_core: float  # HTTP maximum on the Redis online store / cores
    postgres_decisions_per_s: float
    postgres_feedback_per_s: float
    postgres_bytes_per_decision: float
    train_seconds_per_million: float  # whole `nba train` on the largest size measured
    fit_seconds_per_million: float
    train_peak_mb_per_million: float
    sources: dict[str, str]  # section -> file it came from


def _largest(rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return max(rows, key=lambda r: r[key])


def unit_costs(results: list[tuple[str, dict[str, Any]]]) -> UnitCosts:
    """Per-unit costs from benchmark results, newest first; each section from the newest
    result that has it. Raises KeyError naming a section no result has."""

    def newest(section: str) -> tuple[str, Any]:
        for name, result in results:
            if result.get(section):
                return name, result[section]
        raise KeyError(f"no benchmark result has the '{section}' section: run it first")

    sources: dict[str, str] = {}
    name, materialise = newest("materialise")
    sources["materialise"] = name
    redis_rows = [r for r in materialise if r["online_store"] == "redis"]
    # The production profile's engine; results from before it existed have no "engine".
    bulk = [r for r in redis_rows if r.get("engine") == BULK_ENGINE_LABEL]
    redis_rows = bulk or redis_rows
    redis = _largest(redis_rows, "customers")
    name, http = newest("http")
    sources["http"] = name
    cores = next(r["machine"]["cores"] for n, r in results if n == name)
    # The API as the http section runs it throughout (rows from before the extra runs with
    # more workers have no "workers").
    maximum = max(
        r["throughput_per_s"]
        for r in http
        if r["online_store"] == "redis"
        and r["run"].startswith("max")
        and r.get("workers", HTTP_WORKERS) == HTTP_WORKERS
    )
    name, log_rows = newest("decision_log")
    sources["decision_log"] = name
    postgres = next(r for r in log_rows if r["backend"] == "postgres")
    name, training = newest("training")
    sources["training"] = name
    largest = _largest(training, "decisions")
    millions = largest["decisions"] / 1e6
    return UnitCosts(
        redis_bytes_per_customer=redis["redis_bytes_per_customer"],
        materialise_customers_per_s=redis["customers_per_s"],
        decisions_per_s_per_core=maximum / cores,
        postgres_decisions_per_s=postgres["decisions_per_s"],
        postgres_feedback_per_s=postgres["feedback_per_s"],
        postgres_bytes_per_decision=postgres["bytes_per_decision"],
        train_seconds_per_million=largest["nba_train_wall_s"] / millions,
        fit_seconds_per_million=largest["fit_s"] / millions,
        train_peak_mb_per_million=largest["peak_memory_mb"] / millions,
        sources=sources,
    )


@dataclass(frozen=True)
class Volume:
    """The bank: customers, decisions a day, and the assumptions about its traffic."""

    customers: int
    decisions_per_day: int
    peak_factor: float = 3.0  # busiest hour's rate over the day's average
    feedback_per_decision: float = 1.0
    training_decisions: int = 10_000_000


def capacity(costs: UnitCosts, volume: Volume) -> list[tuple[str, str, str]]:
    """(quantity, value, how it is derived) rows of the capacity model."""
    peak_per_s = volume.decisions_per_day / SECONDS_PER_DAY * volume.peak_factor
    redis_gb = volume.customers * costs.redis_bytes_per_customer / 1e9
    cores = peak_per_s / costs.decisions_per_s_per_core
    writes_per_s = peak_per_s * (1 + volume.feedback_per_decision)
    # the measured machine wrote decisions at one rate and feedback at another: the share
    # of one such server a mix of both takes
    postgres_load = (
        peak_per_s / costs.postgres_decisions_per_s
        + peak_per_s * volume.feedback_per_decision / costs.postgres_feedback_per_s
    )
    storage_gb_per_day = volume.decisions_per_day * costs.postgres_bytes_per_decision / 1e9
    materialise_min = volume.customers / costs.materialise_customers_per_s / 60
    millions = volume.training_decisions / 1e6
    return [
        (
            "peak decisions/s",
            f"{peak_per_s:,.0f}",
            f"{volume.decisions_per_day:,}/day / 86,400 x peak factor {volume.peak_factor:g}",
        ),
        (
            "Redis memory",
            f"{redis_gb:,.1f} GB",
            f"{volume.customers:,} customers x {costs.redis_bytes_per_customer:,.0f} B "
            "(data only; add the replica and about 30 % allocator headroom)",
        ),
        (
            "API cores",
            f"{cores:,.1f}",
            f"peak / {costs.decisions_per_s_per_core:,.0f} decisions/s per core "
            "(HTTP maximum, Redis online store, load generator on the same cores)",
        ),
        (
            "PostgreSQL writes/s",
            f"{writes_per_s:,.0f}",
            f"peak x (1 decision + {volume.feedback_per_decision:g} feedback), one "
            "transaction each",
        ),
        (
            "PostgreSQL servers like the benchmark's",
            f"{postgres_load:,.2f}",
            f"peak / {costs.postgres_decisions_per_s:,.0f} decisions/s + feedback / "
            f"{costs.postgres_feedback_per_s:,.0f} feedback/s (measured on this machine)",
        ),
        (
            "PostgreSQL storage",
            f"{storage_gb_per_day:,.1f} GB/day",
            f"decisions/day x {costs.postgres_bytes_per_decision:,.0f} B per decision with "
            "its feedback (tables and indexes)",
        ),
        (
            "full materialisation",
            f"{materialise_min:,.0f} min",
            f"customers / {costs.materialise_customers_per_s:,.0f} customers/s into Redis "
            "(one process)",
        ),
        (
            f"training on {volume.training_decisions:,} decisions",
            f"{costs.train_seconds_per_million * millions / 60:,.0f} min, "
            f"{costs.train_peak_mb_per_million * millions / 1024:,.0f} GB peak",
            f"{costs.train_seconds_per_million:,.0f} s and "
            f"{costs.train_peak_mb_per_million:,.0f} MB per million decisions (`nba train`, "
            f"one machine, linear); LightGBM fit alone "
            f"{costs.fit_seconds_per_million * millions / 60:,.1f} min",
        ),
    ]


def unit_cost_rows(costs: UnitCosts) -> list[tuple[str, str, str]]:
    """(unit cost, measured value, benchmark section) rows."""
    return [
        ("Redis memory per customer", f"{costs.redis_bytes_per_customer:,.0f} B", "materialise"),
        (
            "materialisation into Redis",
            f"{costs.materialise_customers_per_s:,.0f} customers/s",
            "materialise",
        ),
        ("decisions per API core", f"{costs.decisions_per_s_per_core:,.0f} /s", "http"),
        ("PostgreSQL decision writes", f"{costs.postgres_decisions_per_s:,.0f} /s", "decision_log"),
        ("PostgreSQL feedback writes", f"{costs.postgres_feedback_per_s:,.0f} /s", "decision_log"),
        (
            "PostgreSQL bytes per decision",
            f"{costs.postgres_bytes_per_decision:,.0f} B",
            "decision_log",
        ),
        (
            "`nba train` per million decisions",
            f"{costs.train_seconds_per_million:,.0f} s",
            "training",
        ),
        (
            "LightGBM fit per million decisions",
            f"{costs.fit_seconds_per_million:,.1f} s",
            "training",
        ),
        (
            "training peak memory per million decisions",
            f"{costs.train_peak_mb_per_million:,.0f} MB",
            "training",
        ),
    ]


def load_results(folder: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every benchmark result in `folder`, newest first."""
    files = sorted(folder.glob("bench-*.json"), reverse=True)
    return [(f.name, json.loads(f.read_text())) for f in files]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default="bench-results", help="folder of bench-*.json")
    parser.add_argument("--customers", type=int, default=10_000_000)
    parser.add_argument("--decisions-per-day", type=int, default=50_000_000)
    parser.add_argument("--peak-factor", type=float, default=3.0)
    parser.add_argument("--feedback-per-decision", type=float, default=1.0)
    parser.add_argument("--training-decisions", type=int, default=10_000_000)
    args = parser.parse_args(argv)
    results = load_results(Path(args.results))
    if not results:
        raise SystemExit(f"no bench-*.json in {args.results}: run `make bench` first")
    try:
        costs = unit_costs(results)
    except KeyError as exc:
        raise SystemExit(str(exc.args[0])) from exc
    volume = Volume(
        args.customers,
        args.decisions_per_day,
        args.peak_factor,
        args.feedback_per_decision,
        args.training_decisions,
    )
    print("| unit cost | measured | benchmark section |")
    print("|---|---:|---|")
    for name, value, section in unit_cost_rows(costs):
        print(f"| {name} | {value} | {section} ({costs.sources[section]}) |")
    print()
    print("| quantity | value | derived from |")
    print("|---|---:|---|")
    for quantity, value, how in capacity(costs, volume):
        print(f"| {quantity} | {value} | {how} |")
    print("\nunit costs from: " + ", ".join(f"{s}: {f}" for s, f in costs.sources.items()))


if __name__ == "__main__":
    main()
