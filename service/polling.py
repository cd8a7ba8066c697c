"""A background thread that runs one check at a fixed interval until stopped."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Poller:
    """Calls `check` every `interval` seconds in a daemon thread; `stop` ends it."""

    def __init__(self, name: str, check: Callable[[], object]) -> None:
        self._name = name
        self._check = check
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, interval: float) -> None:
        """Start polling (an interval of 0 or less, or a second start, does nothing)."""
        if interval <= 0 or self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self._check()
                except Exception:  # one failed check must not end the polling
                    log.exception("%s: check failed, polling goes on", self._name)

        self._thread = threading.Thread(target=loop, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and wait for a check in progress to finish."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
