"""A circuit breaker: after a dependency fails, fail fast for a while instead of waiting on it.

While Redis or PostgreSQL is down, every call would otherwise wait for a connect or pool
timeout and hold a decision thread (or, for the first failure, the worker's event loop:
see `service.placement`, which moves decisions to threads while a breaker is open). The
breaker opens on a failure; while it is open, calls raise at once, except one trial call
every `cooldown` seconds; the first call that succeeds closes it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from enum import StrEnum

from service.errors import NBAError
from service.metrics import DEPENDENCY_UP

log = logging.getLogger(__name__)


class BreakerState(StrEnum):
    """closed: calls go through; open: calls fail fast."""

    CLOSED = "closed"
    OPEN = "open"


class CircuitBreaker:
    """Fail fast on `dependency` after a failure; one trial call per `cooldown` seconds."""

    def __init__(
        self,
        dependency: str,
        error: type[NBAError],
        cooldown: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dependency = dependency
        self._error = error
        self._cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._open_until = 0.0
        self._state = BreakerState.CLOSED
        self.last_error: str | None = None
        DEPENDENCY_UP.labels(dependency).set(1)

    @property
    def state(self) -> BreakerState:
        """Whether calls fail fast right now (open) or go through (closed)."""
        return self._state

    def check(self) -> None:
        """Raise the dependency's error while the breaker is open, but let one trial call
        through every `cooldown` seconds."""
        if self._state is BreakerState.CLOSED:
            return
        with self._lock:
            now = self._clock()
            if now >= self._open_until:
                self._open_until = now + self._cooldown  # this caller is the trial
                return
        raise self._error(f"{self.dependency} unavailable (failing fast after: {self.last_error})")

    def failure(self, reason: str) -> None:
        """A call failed: open (again) for `cooldown` seconds."""
        with self._lock:
            self.last_error = reason
            self._open_until = self._clock() + self._cooldown
            self._set(BreakerState.OPEN)

    def success(self) -> None:
        """A call succeeded: close."""
        if self._state is BreakerState.OPEN:
            with self._lock:
                self._set(BreakerState.CLOSED)

    def _set(self, state: BreakerState) -> None:
        if state is self._state:
            return
        self._state = state
        DEPENDENCY_UP.labels(self.dependency).set(1 if state is BreakerState.CLOSED else 0)
        if state is BreakerState.OPEN:
            log.warning("%s unavailable, failing fast: %s", self.dependency, self.last_error)
        else:
            log.info("%s available again", self.dependency)
