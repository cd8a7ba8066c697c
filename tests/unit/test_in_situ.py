"""The benchmark's step timers: they time the real engine's steps and leave it as it was."""

from __future__ import annotations

from service.engine import DecisionEngine
from service.log_guard import GuardedDecisionLog
from service.vocabulary import Touchpoint
from tests.benchmarks.in_situ import DECIDE, SESSION, StepTimes, instrumented
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
    steps = times.served
    assert steps[DECIDE][0] > steps[RULES][0] + steps[SCORE][0] + steps[SESSION][0]
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
