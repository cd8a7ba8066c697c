"""Request IDs, one access-log line per request, latency metrics and JSON logs.

The access log names the route template (`/admin/customers/{customer_id}/consent`), never
the raw path, and no request or response body: customer IDs stay out of the logs.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.error_handlers import internal_error
from service.metrics import REQUEST_SECONDS

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
access_log = logging.getLogger("nba.access")


class RequestContextMiddleware:
    """Pure ASGI middleware: request ID in and out, latency histogram, access log line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = REQUEST_ID.set(request_id)
        status = 500
        started = False
        began = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Answered here, not by Starlette's outermost handler, so that the log line and
            # the response keep the request ID.
            access_log.exception("unhandled error")
            if not started:
                await internal_error()(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - began
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "other"
            REQUEST_SECONDS.labels(template, method, str(status)).observe(elapsed)
            access_log.info(
                "%s %s %d",
                scope["method"],
                template,
                status,
                extra={
                    "route": template,
                    "method": method,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                    "caller": scope.get("state", {}).get("caller", "-"),
                },
            )
            REQUEST_ID.reset(token)


class RequestIdFilter(logging.Filter):
    """Adds the current request ID to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request ID and any extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        entry |= {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def logging_config(level: str, fmt: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` for the API process (uvicorn's own loggers included).

    Uvicorn's access log is off: `nba.access` replaces it without raw paths.
    """
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"}
        if fmt == "json"
        else {"format": "%(asctime)s %(levelname)-7s [%(request_id)s] %(name)s: %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": f"{__name__}.RequestIdFilter"}},
        "formatters": {"default": formatter},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["request_id"],
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"handlers": ["default"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False},
            **{
                noisy: {"level": "WARNING"}
                for noisy in ("feast", "mlflow", "alembic", "urllib3", "httpx", "matplotlib")
            },
        },
    }
