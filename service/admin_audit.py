"""The audit log of admin actions: a row in `admin_audit` and a line on `nba.audit` per call.

`audit_admin_action` is a dependency of the admin router, ahead of its scope check, so it
records every call of an admin route, refused ones (403) included: the caller's key name,
the action (the route's name), the request ID, the outcome (`ok` or the error code the
caller got) and, for a route about a customer, the SHA-256 hex of the customer ID, never
the ID. Calls without a valid key (401) name no caller and are not recorded; the access
log counts them.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from service.decision_log import AuditEntry
from service.errors import NBAError, UnauthenticatedError
from service.observability import REQUEST_ID

audit_log = logging.getLogger("nba.audit")
ANONYMOUS = "anonymous"  # the caller while authentication is off


def subject_of(customer_id: str) -> str:
    """How the audit log names a customer: the SHA-256 hex of the ID."""
    return hashlib.sha256(customer_id.encode()).hexdigest()


def outcome_of(exc: BaseException | None) -> str:
    """`ok`, or the error code the caller got."""
    if exc is None:
        return "ok"
    if isinstance(exc, NBAError):
        return exc.code
    if isinstance(exc, RequestValidationError):
        return "invalid_request"
    if isinstance(exc, HTTPException):
        return f"http_{exc.status_code}"
    return "internal_error"


def audit_admin_action(request: Request) -> Iterator[None]:
    """Record the call once the route is done (use with `Depends(..., scope="function")`, so
    that this runs before the answer is sent).

    When the action succeeded but its record cannot be written, the caller gets 503
    (`decision_log_unavailable`): admin actions are idempotent, and the retry is recorded.
    """
    try:
        yield
    except Exception as exc:
        if not isinstance(exc, UnauthenticatedError):
            _record(request, outcome_of(exc), must_persist=False)
        raise
    _record(request, "ok", must_persist=True)


def _record(request: Request, outcome: str, must_persist: bool) -> None:
    customer_id = request.path_params.get("customer_id")
    entry = AuditEntry(
        at=time.time(),
        caller=getattr(request.state, "caller", ANONYMOUS),
        action=getattr(request.scope.get("route"), "name", "unknown"),
        request_id=REQUEST_ID.get(),
        outcome=outcome,
        subject=subject_of(customer_id) if customer_id is not None else None,
    )
    audit_log.info(
        "admin action %s by %s: %s",
        entry.action,
        entry.caller,
        entry.outcome,
        extra={
            "action": entry.action,
            "caller": entry.caller,
            "outcome": entry.outcome,
            "subject": entry.subject,
        },
    )
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None:
        return  # not started: there is no log to write to, and the action did not run
    try:
        runtime.decision_log.record_audit(entry)
    except NBAError:
        audit_log.error(
            "admin action %s by %s not written to admin_audit", entry.action, entry.caller
        )
        if must_persist:
            raise
