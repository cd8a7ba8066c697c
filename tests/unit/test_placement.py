"""Where decisions run: the event loop while dependencies are quick, threads otherwise."""

from __future__ import annotations

import logging

import pytest

from service.breaker import CircuitBreaker
from service.errors import FeatureStoreError
from service.placement import DecisionPlacement
from tests.unit.engine_kit import Clock


def test_decisions_stay_on_the_loop_while_they_are_quick() -> None:
    placement = DecisionPlacement([], slow_seconds=0.02, clock=Clock())
    assert placement.on_loop
    placement.ran_on_loop(0.019)
    assert placement.on_loop


def test_a_slow_decision_sends_the_next_ones_to_threads_for_a_while(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    placement = DecisionPlacement([], slow_seconds=0.02, threads_seconds=5.0, clock=clock)
    with caplog.at_level(logging.INFO, logger="service.placement"):
        placement.ran_on_loop(0.02)
        assert not placement.on_loop
        clock.now += 4.9
        assert not placement.on_loop
        clock.now += 0.1
        assert placement.on_loop  # the loop is tried again
    assert [r.getMessage() for r in caplog.records] == [
        "a decision on the event loop took 20 ms",
        "decisions run on threads (a slow decision)",
        "decisions run on the event loop again",
    ]


def test_decisions_go_to_threads_while_a_breaker_is_open() -> None:
    clock = Clock()
    breaker = CircuitBreaker("feature_store", FeatureStoreError, cooldown=1.0, clock=clock)
    placement = DecisionPlacement([breaker], clock=clock)
    breaker.failure("timeout")
    assert not placement.on_loop
    clock.now += 2.0  # the trial call is due: it runs on a thread too
    assert not placement.on_loop
    breaker.check()
    breaker.success()
    assert placement.on_loop
