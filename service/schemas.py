"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from service.engine import Decision, ScoredAction
from service.vocabulary import ActionType, Touchpoint

CUSTOMER_ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"


class DecisionRequest(BaseModel):
    """Ask for the next best action for one customer at one touchpoint."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"customer_id": "C0000042", "touchpoint": "call_center"}]},
    )

    customer_id: str = Field(
        min_length=1,
        max_length=128,
        pattern=CUSTOMER_ID_PATTERN,
        description="The customer's ID, the same on every channel",
    )
    touchpoint: Touchpoint = Field(description="Where the customer is now")


class ActionResponse(BaseModel):
    """One action with its score."""

    action_id: str
    type: ActionType
    title: str
    script: str = Field(description="What an agent or a page can say")
    propensity: float | None = Field(description="Predicted probability of acceptance")
    expected_value: float = Field(description="propensity x value - cost, in EUR")

    @classmethod
    def of(cls, scored: ScoredAction) -> ActionResponse:
        """Build from the engine's scored action."""
        action = scored.action
        return cls(
            action_id=action.id,
            type=action.type,
            title=action.title,
            script=action.script,
            propensity=scored.propensity,
            expected_value=round(scored.expected_value, 4),
        )


class ModelResponse(BaseModel):
    """Which registered model version decided."""

    name: str
    version: str
    alias: str


class DecisionResponse(BaseModel):
    """The recommendation, the ranked candidates and the provenance of the answer."""

    decision_id: str
    customer_id: str
    touchpoint: Touchpoint
    personalised: bool = Field(description="False when no customer features went into the model")
    action: ActionResponse
    ranked: list[ActionResponse]
    model: ModelResponse
    notices: list[str]

    @classmethod
    def of(cls, decision: Decision) -> DecisionResponse:
        """Build from the engine's decision."""
        return cls(
            decision_id=decision.decision_id,
            customer_id=decision.customer_id,
            touchpoint=decision.touchpoint,
            personalised=decision.personalised,
            action=ActionResponse.of(decision.chosen),
            ranked=[ActionResponse.of(s) for s in decision.ranked],
            model=ModelResponse(
                name=decision.model.name, version=decision.model.version, alias=decision.model.alias
            ),
            notices=decision.notices,
        )


class ErrorDetail(BaseModel):
    """One problem with a request, naming the field at fault."""

    field: str
    message: str


class ErrorBody(BaseModel):
    """Stable machine-readable code, a human message and optional per-field details."""

    code: str
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    """The one error format of every endpoint."""

    error: ErrorBody


class HealthResponse(BaseModel):
    """Liveness or readiness."""

    status: str
    model: ModelResponse | None = None
