"""The circuit breaker's own logic, with an injected clock."""

from __future__ import annotations

from typing import cast

import pytest

from service.breaker import BreakerState, CircuitBreaker
from service.errors import FeatureStoreError
from service.metrics import DEPENDENCY_UP


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def gauge(dependency: str) -> float:
    # prometheus_client's private `_value` is untyped; a gauge holds a float
    return cast(float, DEPENDENCY_UP.labels(dependency)._value.get())


def test_a_failure_opens_it_and_calls_fail_fast_until_the_cooldown_ends() -> None:
    clock = Clock()
    breaker = CircuitBreaker("store_a", FeatureStoreError, cooldown=1.0, clock=clock)
    breaker.check()  # closed: goes through
    breaker.failure("connection refused")
    assert breaker.state is BreakerState.OPEN
    assert gauge("store_a") == 0
    with pytest.raises(FeatureStoreError, match=r"store_a unavailable.*connection refused"):
        breaker.check()
    clock.now += 0.5
    with pytest.raises(FeatureStoreError):
        breaker.check()


def test_one_trial_call_per_cooldown_and_a_success_closes_it() -> None:
    clock = Clock()
    breaker = CircuitBreaker("store_b", FeatureStoreError, cooldown=1.0, clock=clock)
    breaker.failure("down")
    clock.now += 1.0
    breaker.check()  # the trial call
    with pytest.raises(FeatureStoreError):
        breaker.check()  # everyone else keeps failing fast while the trial runs
    breaker.failure("still down")
    clock.now += 0.99
    with pytest.raises(FeatureStoreError):
        breaker.check()
    clock.now += 0.01
    breaker.check()  # the next trial
    breaker.success()
    assert breaker.state is BreakerState.CLOSED
    assert gauge("store_b") == 1
    breaker.check()
    breaker.check()


def test_a_trial_that_never_reports_does_not_keep_it_open_for_ever() -> None:
    clock = Clock()
    breaker = CircuitBreaker("store_c", FeatureStoreError, cooldown=1.0, clock=clock)
    breaker.failure("down")
    clock.now += 1.0
    breaker.check()  # a trial whose caller failed for another reason and never reports
    clock.now += 1.0
    breaker.check()  # another trial is let through one cooldown later
