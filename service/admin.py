"""Admin routes (the `admin` scope): reload the models now, update a customer's consent,
erase a customer. Every call is recorded in the audit log (`service.admin_audit`)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from service.admin_audit import audit_admin_action
from service.auth import scoped
from service.routes import RuntimeDep, error_responses
from service.rules import PROFILING_CONSENT, marketing_consent_feature
from service.schemas import CUSTOMER_ID_PATTERN, ModelsStatus
from service.vocabulary import Scope, Touchpoint

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    # The audit first: it also records calls that the scope check refuses.
    dependencies=[Depends(audit_admin_action, scope="function"), *scoped(Scope.ADMIN)],
    responses=error_responses(401, 403, 503),
)

CustomerId = Annotated[str, Path(min_length=1, max_length=128, pattern=CUSTOMER_ID_PATTERN)]


@router.post("/models/reload", response_model=ModelsStatus, summary="Check the registry now")
def reload_models(runtime: RuntimeDep) -> ModelsStatus:
    """Follow the registry aliases now instead of at the next poll, retrying a version that
    was refused before. Answers for the worker that took the request; the others follow at
    their next poll (`NBA_MODEL_POLL_SECONDS`)."""
    runtime.models.refresh(retry_refused=True)
    return ModelsStatus.of(runtime.models)


class ConsentUpdate(BaseModel):
    """A customer's consent as it stands now: every purpose, not a difference."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"marketing": ["email", "app"], "profiling": True}]},
    )

    marketing: list[Touchpoint] = Field(
        description="Touchpoints where marketing is allowed; every other one is withdrawn"
    )
    profiling: bool = Field(strict=True, description="Whether customer data may go into the model")


class ConsentResponse(ConsentUpdate):
    """The consent now in the online store."""

    customer_id: str
    updated_at: datetime


@router.put(
    "/customers/{customer_id}/consent",
    response_model=ConsentResponse,
    responses=error_responses(422),
    summary="Replace a customer's consent",
)
def update_consent(
    customer_id: CustomerId, body: ConsentUpdate, runtime: RuntimeDep
) -> ConsentResponse:
    """Written straight into the online store: the customer's next decision uses it."""
    values = {marketing_consent_feature(tp): int(tp in body.marketing) for tp in Touchpoint}
    values[PROFILING_CONSENT] = int(body.profiling)
    now = datetime.now(UTC)
    features = runtime.features
    features.write(features.views[PROFILING_CONSENT], customer_id, values, now)
    log.info("consent updated", extra={"marketing": sorted(body.marketing)})
    return ConsentResponse(
        customer_id=customer_id,
        marketing=sorted(set(body.marketing)),
        profiling=body.profiling,
        updated_at=now,
    )


class ErasureResponse(BaseModel):
    """What an erasure removed; counts are zero for an ID that was erased before or never
    known (erasing again is harmless)."""

    customer_id: str
    feature_views_cleared: list[str] = Field(
        description="Online feature views that held a row for the customer and no longer do"
    )
    decisions_pseudonymised: int = Field(
        description="Decision-log rows whose customer ID was replaced by a random pseudonym"
    )
    erased_at: datetime


@router.delete(
    "/customers/{customer_id}",
    response_model=ErasureResponse,
    responses=error_responses(422),
    summary="Erase a customer (GDPR)",
)
def erase_customer(customer_id: CustomerId, runtime: RuntimeDep) -> ErasureResponse:
    """Delete the customer's rows from the online feature store (profile, activity, consent)
    and replace their ID in the decision log by a fresh random pseudonym. Their next decision
    is the unknown-customer answer. The offline store and the source data are not touched:
    erase the customer there too, or the next materialisation brings them back."""
    views = runtime.features.erase(customer_id)
    rows = runtime.decision_log.erase_customer(customer_id)
    log.info("customer erased", extra={"feature_views": views, "decisions": rows})
    return ErasureResponse(
        customer_id=customer_id,
        feature_views_cleared=views,
        decisions_pseudonymised=rows,
        erased_at=datetime.now(UTC),
    )
