"""An exclusive lock on a file, shared by the processes writing one SQLite database.

SQLite lets one writer in at a time and makes the others retry in its busy handler, which
sleeps between tries (up to 100 ms each). Two busy service workers then take turns at the
pace of those sleeps, and every thread queued behind a sleeping one waits too. Writers that
take this lock first find SQLite's own lock free: a waiter polls every millisecond, so it
gets in within about a millisecond of the release, and gives up after `timeout` seconds
instead of hanging behind a stuck holder. The kernel drops the lock of a process that dies.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

POLL_SECONDS = 0.001


class FileLockTimeout(TimeoutError):
    """The lock stayed held by another writer for longer than the timeout."""


class FileLock:
    """An exclusive `flock` on `path`; each instance is its own holder, so two instances in
    one process exclude each other like two processes do. Not for sharing between threads:
    serialise them before taking it."""

    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock for the block; FileLockTimeout after `timeout` seconds of waiting."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise FileLockTimeout(
                        f"{self.path} held by another writer for {self.timeout:g} s"
                    ) from None
                time.sleep(POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Release the file descriptor (and the lock, if held)."""
        os.close(self._fd)
