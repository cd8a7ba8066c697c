"""The real app in-process (`create_app`) on the small stack, with authentication on.

Each app gets its own copy of the stack's Feast repo: consent updates and erasures a test
sends (fuzzed ones included) stay out of the store the other tests read.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.auth import issue_key
from service.observability import JsonFormatter, RequestIdFilter
from service.settings import ServiceSettings
from service.vocabulary import Scope
from tests.conftest import Stack

TEST_CLIENT_LOGGERS = {"httpx", "httpcore"}  # the test's own HTTP client, not the service
THROTTLED_RATE = 0.01  # requests per second: after its burst, the key waits ~100 s


@dataclass(frozen=True)
class Keys:
    """`full` holds every scope; `throttled` may only decide, at THROTTLED_RATE."""

    full: str
    throttled: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.full}


def app_settings(stack: Stack, folder: Path, **overrides: Any) -> tuple[ServiceSettings, Keys]:
    """Settings of an app on a copy of `stack`'s Feast repo with its own decision log, model
    cache and keys file."""
    feature_repo = folder / "feature_repo"
    shutil.copytree(stack.feature_repo, feature_repo, ignore=shutil.ignore_patterns("__pycache__"))
    keys_file = folder / "api_keys.yaml"
    keys = Keys(
        full=issue_key(keys_file, "full", list(Scope)),
        throttled=issue_key(keys_file, "throttled", [Scope.DECIDE], THROTTLED_RATE),
    )
    settings = ServiceSettings(
        feature_repo=feature_repo,
        mlflow_tracking_uri=stack.tracking_uri,
        model_cache_dir=folder / "models",
        decision_log_path=folder / "decision_log.db",
        api_keys_file=keys_file,
        model_poll_seconds=0,
        catalog_reload_seconds=0,
        exploration_seed=1,
        **overrides,
    )
    return settings, keys


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.addFilter(RequestIdFilter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.partition(".")[0] in TEST_CLIENT_LOGGERS:
            return
        line = json.dumps(json.loads(self.format(record)), ensure_ascii=False)
        # The JSON line (message, extras, exception) and the raw record (msg, args, extras).
        self.lines.append(f"{line}\n{record.getMessage()}\n{vars(record)!r}")


@contextmanager
def every_log_at_debug() -> Iterator[list[str]]:
    """Capture every logger's records at DEBUG, as the JSON log format writes them."""
    root = logging.getLogger()
    loggers = [root] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    saved = [(logger, logger.level, logger.disabled) for logger in loggers]
    handler = _Collect()
    # The root handler, and one on each logger whose records stop before the root.
    hooked = [root] + [logger for logger in loggers[1:] if not logger.propagate]
    for logger in hooked:
        logger.addHandler(handler)
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
    try:
        yield handler.lines
    finally:
        for logger in hooked:
            logger.removeHandler(handler)
        for logger, level, disabled in saved:
            logger.setLevel(level)
            logger.disabled = disabled
