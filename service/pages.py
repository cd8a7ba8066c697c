"""Server-rendered pages for product owners: models in service, their cards, the explorer."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from service.auth import scoped
from service.model_directory import CardNotFoundError
from service.routes import RuntimeDep
from service.schemas import DecisionRequest
from service.vocabulary import ModelRole, Scope, Touchpoint

templates = Jinja2Templates(directory=Path(__file__).with_name("templates"))
templates.env.filters["number"] = lambda v, digits=2: "n/a" if v is None else f"{v:,.{digits}f}"
templates.env.filters["percent"] = lambda v: "n/a" if v is None else f"{v:.1%}"
templates.env.filters["datetime"] = lambda ms: datetime.fromtimestamp(ms / 1000, UTC).strftime(
    "%Y-%m-%d %H:%M UTC"
)

router = APIRouter(include_in_schema=False, dependencies=scoped(Scope.REVIEW))

EXPLORER_ERRORS = {
    "touchpoint": "Unknown touchpoint '{touchpoint}'.",
    "customer_id": "A customer ID has 1 to 128 printable characters.",
}


@router.get("/models", response_class=HTMLResponse)
def models_page(request: Request, runtime: RuntimeDep) -> HTMLResponse:
    """The champion and the challenger, with links to their cards."""
    served = runtime.directory.served()
    return templates.TemplateResponse(
        request,
        "models.html",
        {
            "model_name": runtime.directory.model_name,
            "models": served,
            "has_challenger": any(m.alias == ModelRole.CHALLENGER for m in served),
            "serving": runtime.models.current.champion,
        },
    )


@router.get("/models/compare", response_class=HTMLResponse)
def comparison_page(runtime: RuntimeDep) -> HTMLResponse:
    """The challenger's card set side by side with the champion's."""
    version = runtime.directory.challenger_version()
    return HTMLResponse(runtime.directory.page(version, "card/comparison.html"))


@router.get("/models/{version}/card", response_class=HTMLResponse)
def card_page(version: str, runtime: RuntimeDep) -> HTMLResponse:
    """A version's model card, as logged with it at training time."""
    if not version.isdigit():
        raise CardNotFoundError(f"'{version}' is not a model version")
    return HTMLResponse(runtime.directory.page(version, "card/card.html"))


@router.get("/explorer", response_class=HTMLResponse)
def explorer_page(
    request: Request,
    runtime: RuntimeDep,
    customer_id: str = "",
    touchpoint: str = Touchpoint.CALL_CENTER.value,
) -> HTMLResponse:
    """Dry-run a decision and show the ranking, the reasons and every 'why not'."""
    context: dict[str, object] = {
        "customer_id": customer_id,
        "touchpoint": touchpoint,
        "decision": None,
        "error": None,
        "touchpoints": [t.value for t in Touchpoint],
        "titles": {a.id: a.title for a in runtime.catalogs.current.catalog.actions},
    }
    status = 200
    if customer_id:
        try:  # the same validation as POST /v1/decisions
            query = DecisionRequest(customer_id=customer_id, touchpoint=touchpoint)
        except ValidationError as exc:
            field = str(exc.errors()[0]["loc"][0])
            context["error"], status = EXPLORER_ERRORS[field].format(touchpoint=touchpoint), 422
        else:
            context["decision"] = runtime.engine.decide(
                query.customer_id, query.touchpoint, record=False
            )
    return templates.TemplateResponse(request, "explorer.html", context, status_code=status)
