"""The benchmark's step timers: they time the real engine's steps and leave it as it was."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from service.engine import DecisionEngine
from service.log_guard import GuardedDecisionLog
from service.vocabulary import Touchpoint
from tests.benchmarks.in_situ import DECIDE, SESSION, InstrumentedApp, StepTimes, instrumented
from tests.benchmarks.suite import breakdown_markdown
from tests.unit.engine_kit import CALM_CUSTOMER, make_kit

RULES = "consent + eligibility rules"
SCORE = "featurise + predict (25 candidates)"


def test_steps_are_timed_inside_the_block_and_restored_after(catalog, model, tmp_path) -> None:
    kit = make_kit(catalog, model, tmp_path / "log.db", {"c0": CALM_CUSTOMER})
    kit.engine.decision_log = GuardedDecisionLog(kit.log)
    decide, eligible = DecisionEngine.decide, DecisionEngine.__dict__["_eligible"]
    times = StepTimes()
    with instrumented(times):
        kit.engine.decide("c0", Touchpoint.WEB)
        times.current = times.tight
        kit.engine.decide("c0", Touchpoint.WEB)
        kit.engine.decide("c0", Touchpoint.WEB)
    kit.engine.decide("c0", Touchpoint.WEB)  # after the block: not timed

    assert {label: len(times.served[label]) for label in (DECIDE, RULES, SCORE, SESSION)} == {
        DECIDE: 1,
        RULES: 1,
        SCORE: 1,
        SESSION: 1,
    }
    assert len(times.tight[DECIDE]) == 2
    assert DecisionEngine.decide is decide
    assert DecisionEngine.__dict__["_eligible"] is eligible


def test_breakdown_table_puts_served_beside_back_to_back() -> None:
    times = StepTimes()
    times.add(DECIDE, 1_200_000)
    times.current = times.tight
    times.add(DECIDE, 400_000)
    breakdown = {
        "rate": 100,
        "seconds": 20,
        "decisions": 2000,
        "wrk": {"p50_ms": 2.1, "p99_ms": 3.5},
        **times.summary(),
    }
    lines = breakdown_markdown(breakdown)
    assert "| wrk: request sent to answer received | 2100 | 3500 |  |  |" in lines
    assert f"| {DECIDE} | 1200 | 1200 | 400 | 3.0 |" in lines


def bench_call(method: str, path: str, query: bytes = b"") -> tuple[int, dict[str, Any]]:
    """Status and JSON body of one `/_bench` request to an InstrumentedApp (no inner app)."""
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "query_string": query}
    asyncio.run(InstrumentedApp(None, StepTimes())(scope, None, send))
    return sent[0]["status"], json.loads(sent[1]["body"])


def test_bench_routes_answer_404_for_what_they_do_not_know() -> None:
    assert bench_call("GET", "/_bench/steps") == (200, {"served": {}, "tight": {}})
    assert bench_call("POST", "/_bench/reset")[0] == 200
    assert bench_call("GET", "/_bench/reset")[0] == 404  # wrong method
    assert bench_call("POST", "/_bench/rest")[0] == 404  # mistyped path
    assert bench_call("POST", "/_bench/tight", b"decisions=10")[0] == 404  # parameters missing
