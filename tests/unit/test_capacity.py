"""The capacity model: per-unit costs picked from the right benchmark runs, then scaled."""

from __future__ import annotations

from typing import Any

import pytest

from tests.benchmarks.capacity import Volume, capacity, unit_cost_rows, unit_costs

MACHINE = {"cores": 2}


def _newer() -> dict[str, Any]:
    return {
        "machine": MACHINE,
        "http": [
            {"online_store": "redis", "run": "100/s fixed", "throughput_per_s": 99.8},
            {"online_store": "redis", "run": "max (wrk, 8 connections)", "throughput_per_s": 500},
            {"online_store": "sqlite", "run": "max (wrk, 8 connections)", "throughput_per_s": 900},
            {
                "online_store": "redis",
                "workers": 3,
                "run": "max (wrk, 8 connections)",
                "throughput_per_s": 700,
            },
        ],
        "decision_log": [
            {"backend": "sqlite", "decisions_per_s": 9999, "feedback_per_s": 9999},
            {
                "backend": "postgres",
                "decisions_per_s": 1000,
                "feedback_per_s": 2000,
                "bytes_per_decision": 2000,
            },
        ],
        "materialise": [
            {
                "online_store": "redis",
                "customers": 100_000,
                "customers_per_s": 1,
                "redis_bytes_per_customer": 1,
            },
            {
                "online_store": "redis",
                "customers": 1_000_000,
                "customers_per_s": 5000,
                "redis_bytes_per_customer": 500,
            },
        ],
    }


def _older() -> dict[str, Any]:
    return {
        "machine": MACHINE,
        "http": [{"online_store": "redis", "run": "max", "throughput_per_s": 1}],
        "training": [
            {"decisions": 100_000, "nba_train_wall_s": 1, "fit_s": 1, "peak_memory_mb": 1},
            {"decisions": 2_000_000, "nba_train_wall_s": 400, "fit_s": 40, "peak_memory_mb": 4096},
        ],
    }


def test_each_section_comes_from_the_newest_run_that_has_it() -> None:
    costs = unit_costs([("new.json", _newer()), ("old.json", _older())])
    assert costs.sources == {
        "materialise": "new.json",
        "http": "new.json",
        "decision_log": "new.json",
        "training": "old.json",
    }
    assert costs.decisions_per_s_per_core == 250  # Redis, 2 workers (not 3), over 2 cores
    assert costs.redis_bytes_per_customer == 500  # the largest materialisation
    assert costs.train_seconds_per_million == 200
    assert costs.train_peak_mb_per_million == 2048


def test_the_model_scales_the_unit_costs() -> None:
    costs = unit_costs([("new.json", _newer()), ("old.json", _older())])
    rows = {q: v for q, v, _ in capacity(costs, Volume(10_000_000, 86_400_000, peak_factor=2))}
    assert rows["peak decisions/s"] == "2,000"
    assert rows["Redis memory"] == "5.0 GB"
    assert rows["API cores"] == "8.0"
    assert rows["PostgreSQL writes/s"] == "4,000"
    assert rows["PostgreSQL servers like the benchmark's"] == "3.00"  # 2000/1000 + 2000/2000
    assert rows["PostgreSQL storage"] == "172.8 GB/day"
    assert rows["full materialisation"] == "33 min"
    assert rows["training on 10,000,000 decisions"].startswith("33 min, 20 GB peak")


def test_a_missing_section_is_named() -> None:
    with pytest.raises(KeyError, match="training"):
        unit_costs([("new.json", _newer())])


def test_the_unit_costs_are_listed_with_their_section() -> None:
    costs = unit_costs([("new.json", _newer()), ("old.json", _older())])
    rows = {name: (value, section) for name, value, section in unit_cost_rows(costs)}
    assert rows["Redis memory per customer"] == ("500 B", "materialise")
    assert rows["decisions per API core"] == ("250 /s", "http")
    assert rows["`nba train` per million decisions"] == ("200 s", "training")
