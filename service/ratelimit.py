"""Token buckets per API key, kept by each worker process.

A key may send `burst` requests at once and `rate` requests per second after that. The
buckets live in the memory of one worker: an instance with N workers lets a key send up
to N x rate per second (and N x burst at once), since requests are spread over workers.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Per-name token buckets; `clock` is injectable (monotonic seconds) for tests."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def acquire(self, name: str, rate: float | None = None) -> int:
        """Take one token from `name`'s bucket.

        Returns 0 when the request may go ahead, else the whole seconds (at least 1) after
        which one will. `rate` overrides the default rate for this name; no rate (0) means
        no limit.
        """
        rate = self.rate if rate is None else rate
        if rate <= 0:
            return 0
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(name)
            if bucket is None:
                bucket = self._buckets[name] = _Bucket(float(self.burst), now)
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0
            return max(1, math.ceil((1.0 - bucket.tokens) / rate))
