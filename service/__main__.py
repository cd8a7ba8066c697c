"""`python -m service`: serve the API with the settings from the environment."""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings

import uvicorn

from service.app import create_app
from service.observability import logging_config
from service.settings import ServiceSettings


def prepare_metrics_dir(workers: int) -> None:
    """Several workers share their Prometheus samples through files in one empty folder."""
    if workers == 1:
        return
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="nba-metrics-")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder


def main() -> None:
    """Start uvicorn on the configured host and port, with `NBA_WORKERS` processes."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    settings = ServiceSettings()
    prepare_metrics_dir(settings.workers)
    common = {
        "host": settings.host,
        "port": settings.port,
        "log_config": logging_config(settings.log_level, settings.log_format),
        "access_log": False,
    }
    if settings.workers == 1:
        uvicorn.run(create_app(settings), **common)  # type: ignore[arg-type]
    else:
        uvicorn.run(
            "service.app:app_from_environment",
            factory=True,
            workers=settings.workers,
            **common,  # type: ignore[arg-type]
        )


if __name__ == "__main__":
    main()
