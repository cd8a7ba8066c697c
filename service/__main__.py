"""`python -m service`: serve the API with the settings from the environment.

A worker process answers uvicorn's health pings only once it has re-imported this module
(multiprocessing's spawn) and configured logging, which imports the app's modules (Feast,
MLflow, LightGBM): tens of seconds on a busy machine without bytecode caches (the image
sets PYTHONDONTWRITEBYTECODE). With uvicorn's default of 5 s the workers were killed and
respawned forever, so the app is imported lazily and workers get `WORKER_START_SECONDS`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings

import uvicorn

from service.settings import ServiceSettings

WORKER_START_SECONDS = 120  # uvicorn's health-ping timeout for a worker (default 5)


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
    from service.app import create_app  # heavy: imported here, not by every worker's spawn
    from service.observability import logging_config

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
            timeout_worker_healthcheck=WORKER_START_SECONDS,
            **common,  # type: ignore[arg-type]
        )


if __name__ == "__main__":
    main()
