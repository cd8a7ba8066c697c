"""HTTP routes. Domain errors are raised, never turned into responses here."""

from __future__ import annotations

import asyncio
import contextvars
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from service.auth import scoped
from service.engine import UNKNOWN_CUSTOMER_NOTICE, DecisionEngine
from service.errors import NotReadyError
from service.metrics import DECISIONS, FALLBACKS, exposition
from service.runtime import Runtime
from service.schemas import (
    CatalogStatus,
    DecisionRequest,
    DecisionResponse,
    ErrorResponse,
    FeedbackRequest,
    FeedbackResponse,
    HealthResponse,
    ModelsStatus,
)
from service.vocabulary import Scope


async def get_runtime(request: Request) -> Runtime:
    """The runtime the lifespan built; 503 while it is missing. (Dependencies that do no I/O
    are `async def`: FastAPI would run a plain `def` in the thread pool, a hop per request.)"""
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise NotReadyError("the service is starting or failed to start")
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def error_responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI entries for the error statuses a route can answer, in the one error format."""
    descriptions = {
        401: "No API key, or an unknown one (`api_key_missing`, `api_key_invalid`)",
        403: "The API key lacks the scope of this route (`scope_missing`)",
        404: "Unknown decision",
        422: "Invalid request; details name each field",
        503: "Model, feature store or decision log not available",
    }
    return {s: {"model": ErrorResponse, "description": descriptions[s]} for s in statuses}


router = APIRouter()


@router.post(
    "/v1/decisions",
    response_model=DecisionResponse,
    responses=error_responses(401, 403, 422, 503),
    dependencies=scoped(Scope.DECIDE),
    tags=["decisions"],
    summary="Next best action for one customer at one touchpoint",
)
async def create_decision(body: DecisionRequest, runtime: RuntimeDep) -> Response:
    """Apply consent, eligibility and contact rules, score the remaining actions, and return
    the one of highest expected value (or `no_action`), with reasons.

    An unknown customer, or one who objected to profiling, gets a non-personalised answer
    (`personalised: false`) with a notice. Every answer is written to the decision log
    (`logged: true`). While the feature store is down the answer is non-personalised and
    shows no marketing; while the decision log is down it is `no_action` (contact caps
    cannot be checked) and not logged; `degraded` names what was down.
    """
    return await answer_decision(runtime, body)


async def answer_decision(runtime: Runtime, body: DecisionRequest) -> Response:
    """`decision_response` where `runtime.placement` says: on the event loop (timed), or on
    the runtime's decision threads in the request's context (its request ID)."""
    placement = runtime.placement
    if placement.on_loop:
        began = time.perf_counter()
        try:
            return decision_response(runtime.engine, body)
        finally:
            placement.ran_on_loop(time.perf_counter() - began)
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(
        runtime.decision_threads, context.run, decision_response, runtime.engine, body
    )


def decision_response(engine: DecisionEngine, body: DecisionRequest) -> Response:
    """Decide (blocking: see `service.placement`), count it, and render the answer."""
    decision = engine.decide(body.customer_id, body.touchpoint, with_reasons=body.reasons)
    DECISIONS.labels(body.touchpoint.value, decision.chosen.action.id, decision.role.value).inc()
    for dependency in decision.degraded:
        FALLBACKS.labels(f"{dependency}_unavailable").inc()
    if not decision.personalised and not decision.degraded:
        unknown = UNKNOWN_CUSTOMER_NOTICE in decision.notices
        FALLBACKS.labels("unknown_customer" if unknown else "no_profiling").inc()
    answer = DecisionResponse.of(decision, explain=body.explain)
    return Response(answer.model_dump_json(), media_type="application/json")


@router.post(
    "/v1/feedback",
    status_code=202,
    response_model=FeedbackResponse,
    responses=error_responses(401, 403, 404, 422, 503),
    dependencies=scoped(Scope.FEEDBACK),
    tags=["feedback"],
    summary="Record what the customer did with a decision",
)
def create_feedback(body: FeedbackRequest, runtime: RuntimeDep) -> FeedbackResponse:
    """Answered with 202 only once the event is durably stored. Sending the same
    (decision, action, outcome) again is harmless: `status` says `duplicate`."""
    created = runtime.decision_log.record_feedback(
        str(body.decision_id), body.action_id, body.outcome, time.time()
    )
    return FeedbackResponse(
        decision_id=body.decision_id,
        action_id=body.action_id,
        outcome=body.outcome,
        status="recorded" if created else "duplicate",
    )


@router.get("/health/live", response_model=HealthResponse, tags=["health"])
async def live() -> HealthResponse:
    """The process is up."""
    return HealthResponse(status="ok")


@router.get(
    "/health/ready", response_model=HealthResponse, responses=error_responses(503), tags=["health"]
)
async def ready(runtime: RuntimeDep) -> HealthResponse:
    """Model, feature store, catalog and decision log are loaded; decisions can be served.

    `models.last_reload_error` tells why a new registry version was refused (the old one
    serves on); `models.source` says when the service started from its local copy;
    `dependencies` says which of the feature store and the decision log are failing (the
    service stays ready and answers degraded).
    """
    current = runtime.catalogs.current
    return HealthResponse(
        status="ready",
        dependencies={
            breaker.dependency: breaker.state
            for breaker in (runtime.features.breaker, runtime.decision_log.breaker)
        },
        models=ModelsStatus.of(runtime.models),
        catalog=CatalogStatus(
            actions=len(current.catalog.actions),
            loaded_at=current.loaded_at,
            last_reload_error=runtime.catalogs.last_error,
        ),
    )


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    """Prometheus metrics of every worker of this instance."""
    body, content_type = exposition()
    return Response(body, media_type=content_type)
