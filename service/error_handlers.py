"""One mapping from exceptions to the documented error body."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.errors import NBAError, RateLimitedError
from service.schemas import ErrorBody, ErrorDetail, ErrorResponse

log = logging.getLogger(__name__)


def error_response(
    status: int, code: str, message: str, details: list[ErrorDetail] | None = None
) -> JSONResponse:
    """Render the one error format."""
    body = ErrorResponse(error=ErrorBody(code=code, message=message, details=details or []))
    return JSONResponse(status_code=status, content=body.model_dump())


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        details.append(ErrorDetail(field=".".join(loc) or "body", message=str(err.get("msg"))))
    fields = ", ".join(d.field for d in details)
    return error_response(422, "invalid_request", f"invalid request: check {fields}", details)


async def _domain(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NBAError)
    return domain_error(request, exc)


def domain_error(request: Request, exc: NBAError) -> JSONResponse:
    """The answer to a domain error: its status and code, `Retry-After` where it applies."""
    if exc.status_code >= 500:
        log.error("%s: %s", exc.code, exc.message)
    response = error_response(exc.status_code, exc.code, exc.message)
    response.headers.update(exc.headers)
    if isinstance(exc, RateLimitedError):
        response.headers["Retry-After"] = str(exc.retry_after)
    if exc.status_code == 503:  # a dependency is down or the service is starting
        retry_after = getattr(request.app.state, "retry_after_seconds", 5)
        response.headers.setdefault("Retry-After", str(retry_after))
    return response


async def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:  # FastAPI could not parse the body (e.g. not UTF-8)
        details = [ErrorDetail(field="body", message=str(exc.detail))]
        return error_response(422, "invalid_request", "invalid request: check body", details)
    codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
    response = error_response(
        exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail)
    )
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def internal_error() -> JSONResponse:
    """The answer to a bug: no stack trace, a stable code."""
    return error_response(500, "internal_error", "internal error; the request was not completed")


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return internal_error()


def install_error_handlers(app: FastAPI) -> None:
    """Route every error through the documented format."""
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(NBAError, _domain)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
