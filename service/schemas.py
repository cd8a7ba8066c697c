"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from service.breaker import BreakerState
from service.decision_log import Outcome
from service.engine import Decision, ScoredAction
from service.model import LoadedModel
from service.reasons import Reason
from service.rules import Drop, Rule
from service.served_models import ServedModels
from service.vocabulary import ActionType, ChallengerMode, Touchpoint

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
    # Strict: JSON true or false only, as documented (not 0, 1, "yes" or "off").
    reasons: bool = Field(
        True, strict=True, description="Explain the shown action from feature contributions"
    )
    explain: bool = Field(
        False, strict=True, description="Also list every dropped candidate and its rule"
    )


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
    alias: str = Field(description="champion or challenger")

    @classmethod
    def of(cls, model: LoadedModel) -> ModelResponse:
        """Build from a loaded model."""
        return cls(name=model.name, version=model.version, alias=model.alias)


class ReasonResponse(BaseModel):
    """A customer fact that raised the predicted acceptance of the shown action."""

    feature: str
    value: float | None
    contribution: float = Field(description="Contribution to the log-odds of acceptance")
    text: str

    @classmethod
    def of(cls, reason: Reason) -> ReasonResponse:
        """Build from the engine's reason."""
        return cls(
            feature=reason.feature,
            value=reason.value,
            contribution=reason.contribution,
            text=reason.text,
        )


class DroppedResponse(BaseModel):
    """A candidate a rule removed: the answer to 'why not X'."""

    action_id: str
    rule: Rule
    detail: str

    @classmethod
    def of(cls, drop: Drop) -> DroppedResponse:
        """Build from the engine's drop."""
        return cls(action_id=drop.action_id, rule=drop.rule, detail=drop.detail)


class DecisionResponse(BaseModel):
    """The recommendation, why, the ranked candidates and the provenance of the answer."""

    decision_id: str
    customer_id: str
    touchpoint: Touchpoint
    personalised: bool = Field(description="False when no customer features went into the model")
    action: ActionResponse
    selection_probability: float = Field(
        description="Probability with which this action was chosen (exploration included)"
    )
    explored: bool = Field(description="True when exploration showed other than the top action")
    explanation: str = Field(description="How arbitration chose the action, in one sentence")
    reasons: list[ReasonResponse]
    ranked: list[ActionResponse] = Field(description="Eligible candidates, best first")
    dropped: list[DroppedResponse] | None = Field(
        None, description="Candidates removed by a rule (only with explain: true)"
    )
    model: ModelResponse
    notices: list[str]
    logged: bool = Field(
        description="True when the decision is in the decision log (it counts as a contact "
        "and can receive feedback)"
    )
    degraded: list[str] = Field(
        description="Dependencies that were unavailable for this answer (feature_store, "
        "decision_log); empty when all were up"
    )

    @classmethod
    def of(cls, decision: Decision, explain: bool) -> DecisionResponse:
        """Build from the engine's decision."""
        return cls(
            decision_id=decision.decision_id,
            customer_id=decision.customer_id,
            touchpoint=decision.touchpoint,
            personalised=decision.personalised,
            action=ActionResponse.of(decision.chosen),
            selection_probability=decision.selection_probability,
            explored=decision.explored,
            explanation=decision.explanation,
            reasons=[ReasonResponse.of(r) for r in decision.reasons],
            ranked=[ActionResponse.of(s) for s in decision.ranked],
            dropped=[DroppedResponse.of(d) for d in decision.dropped] if explain else None,
            model=ModelResponse.of(decision.model),
            notices=decision.notices,
            logged=decision.logged,
            degraded=list(decision.degraded),
        )


class FeedbackRequest(BaseModel):
    """What happened after a decision: impression, click, accept, reject or dismiss."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "decision_id": "0b9a7f9e-5c1e-4a53-9d0c-3f1b2a7c9e11",
                    "action_id": "personal_loan_offer",
                    "outcome": "accept",
                }
            ]
        },
    )

    decision_id: UUID = Field(description="decision_id of the answer the feedback is about")
    action_id: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
    outcome: Outcome


class FeedbackResponse(BaseModel):
    """Feedback is durable when this is returned."""

    decision_id: UUID
    action_id: str
    outcome: Outcome
    status: Literal["recorded", "duplicate"]


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


class CatalogStatus(BaseModel):
    """Which catalog serves, and why the last reload was refused, if it was."""

    actions: int
    loaded_at: float
    last_reload_error: str | None


class ModelsStatus(BaseModel):
    """The models in service, where they came from, and the last refused reload."""

    champion: ModelResponse
    challenger: ModelResponse | None
    challenger_mode: ChallengerMode
    challenger_share: float
    source: str = Field(description="registry, or the local copy when the registry was down")
    last_reload_error: str | None
    checked_at: float | None = Field(description="Last registry check (unix seconds)")

    @classmethod
    def of(cls, models: ServedModels) -> ModelsStatus:
        """Build from the served models."""
        current, status = models.current, models.status
        return cls(
            champion=ModelResponse.of(current.champion),
            challenger=ModelResponse.of(current.challenger) if current.challenger else None,
            challenger_mode=models.routing.mode,
            challenger_share=models.routing.share,
            source=status.source,
            last_reload_error=status.last_error,
            checked_at=status.checked_at,
        )


class HealthResponse(BaseModel):
    """Liveness or readiness."""

    status: str
    models: ModelsStatus | None = None
    catalog: CatalogStatus | None = None
    dependencies: dict[str, BreakerState] | None = Field(
        None,
        description="closed: calls to the dependency go through; open: it failed and answers "
        "fall back (decisions stay available, degraded)",
    )
