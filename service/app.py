"""The FastAPI application factory."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service.admin import router as admin_router
from service.auth import ApiKeys
from service.error_handlers import install_error_handlers
from service.fast_path import DecisionFastPath
from service.limits import BodySizeLimitMiddleware, InFlightLimitMiddleware, document_limits
from service.observability import RequestContextMiddleware
from service.pages import router as pages_router
from service.ratelimit import RateLimiter
from service.routes import router
from service.runtime import build_runtime
from service.settings import ServiceSettings

log = logging.getLogger(__name__)


def freeze_startup_objects() -> None:
    """Keep what start-up loaded (Feast registry, MLflow, models: ~430k objects) out of the
    garbage collector's full collections, which otherwise traverse all of it and stop the
    worker for about 0.3 s (measured on the demo world) whenever one runs under load."""
    gc.collect()
    gc.freeze()


def create_app(settings: ServiceSettings, decision_fast_path: bool = True) -> FastAPI:
    """Build the app; its lifespan loads catalog, features and model once, before serving.

    `decision_fast_path` (off only in tests that compare the two) answers valid decision
    requests without FastAPI's routing (`service.fast_path`).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = build_runtime(settings)
        app.state.runtime = runtime
        freeze_startup_objects()
        try:
            yield
        finally:
            app.state.runtime = None
            runtime.close()

    app = FastAPI(
        title="Next best action",
        version="1",
        summary="The single best action for one customer at one touchpoint, with its reasons.",
        lifespan=lifespan,
    )
    app.state.api_keys = ApiKeys.load(settings.api_keys_file)
    app.state.retry_after_seconds = settings.fault_retry_after_seconds
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
    if settings.rate_limit_per_second and not app.state.api_keys.enabled:
        log.warning("rate limits apply to API keys; with authentication off nothing is limited")
    install_error_handlers(app)
    # The last one added runs first: request IDs and the access log cover the 413 and the
    # shed (503) answers, and the decision fast path sits inside all the limits.
    if decision_fast_path:
        app.add_middleware(DecisionFastPath)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(InFlightLimitMiddleware, max_in_flight=settings.max_in_flight)
    app.add_middleware(RequestContextMiddleware)
    app.include_router(router)
    app.include_router(admin_router)
    app.include_router(pages_router)
    document_limits(app)
    return app


def app_from_environment() -> FastAPI:
    """The app with settings from `NBA_*` variables (the factory uvicorn workers call)."""
    return create_app(ServiceSettings())
