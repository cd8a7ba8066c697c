"""HTTP routes. Domain errors are raised, never turned into responses here."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from service.engine import DecisionEngine
from service.errors import NotReadyError
from service.runtime import Runtime
from service.schemas import (
    DecisionRequest,
    DecisionResponse,
    ErrorResponse,
    HealthResponse,
    ModelResponse,
)


def get_runtime(request: Request) -> Runtime:
    """The runtime the lifespan built; 503 while it is missing."""
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise NotReadyError("the service is starting or failed to start")
    return runtime


def get_engine(runtime: Annotated[Runtime, Depends(get_runtime)]) -> DecisionEngine:
    """The decision engine of the running service."""
    return runtime.engine


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
EngineDep = Annotated[DecisionEngine, Depends(get_engine)]

ERRORS: dict[int | str, dict[str, object]] = {
    422: {"model": ErrorResponse, "description": "Invalid request; details name each field"},
    503: {"model": ErrorResponse, "description": "Model or feature store not available"},
}

router = APIRouter()


@router.post(
    "/v1/decisions",
    response_model=DecisionResponse,
    responses=ERRORS,
    tags=["decisions"],
    summary="Next best action for one customer at one touchpoint",
)
def create_decision(body: DecisionRequest, engine: EngineDep) -> DecisionResponse:
    """Score every action allowed at the touchpoint and return the one of highest expected value.

    An unknown customer gets a non-personalised answer (`personalised: false`) with a notice.
    """
    return DecisionResponse.of(engine.decide(body.customer_id, body.touchpoint))


@router.get("/health/live", response_model=HealthResponse, tags=["health"])
def live() -> HealthResponse:
    """The process is up."""
    return HealthResponse(status="ok")


@router.get("/health/ready", response_model=HealthResponse, responses=ERRORS, tags=["health"])
def ready(runtime: RuntimeDep) -> HealthResponse:
    """The model and the feature store are loaded; decisions can be served."""
    model = runtime.model
    return HealthResponse(
        status="ready",
        model=ModelResponse(name=model.name, version=model.version, alias=model.alias),
    )
