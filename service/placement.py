"""Where a decision runs: on the worker's event loop while its dependencies answer quickly,
on the runtime's decision threads while one of them is failing or slow.

On the loop a decision costs no thread hand-off, which on some VMs costs more than the
decision's own I/O (two wake-ups: 0.65 ms at p50 and a third of the maximum throughput on
an AMD EPYC host, see docs/performance-history.md). But while it waits on Redis or
the decision log, the worker's other requests wait too. So the loop is used only while
every dependency's breaker is closed and no decision on the loop took `SLOW_SECONDS` in the
last `THREADS_SECONDS`: a dependency that hangs or slows down holds the loop for one
decision, after which decisions overlap their waits on threads (and the breakers' trial
calls run there) until the loop is tried again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from service.breaker import BreakerState, CircuitBreaker

# A decision on the loop takes about 1 ms at p50 with reasons, and up to 44 ms was seen
# while the benchmark's load generator saturated both cores (20 ms sent decisions to the
# threads in the middle of a maximum-throughput run); the dependencies' timeouts are
# 0.5-5 s. 250 ms means a dependency is slow, not the machine.
SLOW_SECONDS = 0.25
THREADS_SECONDS = 5.0  # how long decisions stay on threads after a slow one

log = logging.getLogger(__name__)


class DecisionPlacement:
    """Chooses the event loop or the threads for each decision (see the module)."""

    def __init__(
        self,
        breakers: Sequence[CircuitBreaker],
        slow_seconds: float = SLOW_SECONDS,
        threads_seconds: float = THREADS_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._breakers = tuple(breakers)
        self._slow_seconds = slow_seconds
        self._threads_seconds = threads_seconds
        self._clock = clock
        self._threads_until = 0.0
        self._was_on_loop = True

    @property
    def on_loop(self) -> bool:
        """True when the next decision may run on the event loop (each change is logged)."""
        healthy = all(b.state is BreakerState.CLOSED for b in self._breakers)
        on_loop = healthy and self._clock() >= self._threads_until
        if on_loop != self._was_on_loop:
            self._was_on_loop = on_loop
            if on_loop:
                log.info("decisions run on the event loop again")
            else:
                failing = [b.dependency for b in self._breakers if b.state is BreakerState.OPEN]
                why = f"{', '.join(failing)} failing" if failing else "a slow decision"
                log.warning("decisions run on threads (%s)", why)
        return on_loop

    def ran_on_loop(self, seconds: float) -> None:
        """Record how long a decision on the loop took; a slow one sends the next decisions
        to the threads for `threads_seconds`."""
        if seconds >= self._slow_seconds:
            log.warning("a decision on the event loop took %.0f ms", seconds * 1000)
            self._threads_until = self._clock() + self._threads_seconds
