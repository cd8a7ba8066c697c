from __future__ import annotations

import threading
from pathlib import Path

import pytest

from service.file_lock import FileLock, FileLockTimeout


def test_two_holders_exclude_each_other_and_a_waiter_gives_up_after_its_timeout(
    tmp_path: Path,
) -> None:
    first = FileLock(tmp_path / "log.db.lock")
    second = FileLock(tmp_path / "log.db.lock", timeout=0.05)
    with (
        first.held(),
        pytest.raises(FileLockTimeout, match="held by another writer"),
        second.held(),
    ):
        pass
    with second.held():
        pass
    first.close()
    second.close()


def test_a_waiter_gets_the_lock_once_it_is_released(tmp_path: Path) -> None:
    first = FileLock(tmp_path / "log.db.lock")
    second = FileLock(tmp_path / "log.db.lock", timeout=5.0)
    order: list[str] = []
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with first.held():
            order.append("first in")
            holding.set()
            release.wait()
            order.append("first out")

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait()
    threading.Timer(0.05, release.set).start()
    with second.held():
        order.append("second in")
    holder.join()
    assert order == ["first in", "first out", "second in"]
