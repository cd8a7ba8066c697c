"""Domain errors. Each carries a stable machine-readable code and the HTTP status it maps to."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar


class NBAError(Exception):
    """Base class of every error this project raises on purpose."""

    code = "internal_error"
    status_code = 500
    headers: ClassVar[Mapping[str, str]] = {}

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class CatalogError(NBAError):
    """The action catalog file is missing or invalid."""

    code = "catalog_invalid"
    status_code = 500


class ModelLoadError(NBAError):
    """No usable model could be loaded from the registry."""

    code = "model_unavailable"
    status_code = 503


class FeatureStoreError(NBAError):
    """The online feature store could not be read."""

    code = "feature_store_unavailable"
    status_code = 503


class NotReadyError(NBAError):
    """The service has not finished starting (model or feature store missing)."""

    code = "not_ready"
    status_code = 503


class DecisionLogError(NBAError):
    """The decision log cannot be read or written."""

    code = "decision_log_unavailable"
    status_code = 503


class UnknownDecisionError(NBAError):
    """Feedback names a decision the log does not hold."""

    code = "decision_not_found"
    status_code = 404


class ActionNotInDecisionError(NBAError):
    """Feedback names an action that was not a candidate of that decision."""

    code = "action_not_in_decision"
    status_code = 422


class ConfigurationError(NBAError):
    """A setting or a file it names is invalid; the service does not start."""

    code = "configuration_invalid"
    status_code = 500


class UnauthenticatedError(NBAError):
    """No API key, or one the service does not know (`api_key_missing`, `api_key_invalid`)."""

    code = "api_key_missing"
    status_code = 401
    headers: ClassVar[Mapping[str, str]] = {"WWW-Authenticate": 'Bearer, Basic realm="nba"'}


class ForbiddenError(NBAError):
    """A valid API key without the scope the route needs."""

    code = "scope_missing"
    status_code = 403


class RateLimitedError(NBAError):
    """The API key sent more requests than its rate allows; `retry_after` is in seconds."""

    code = "rate_limited"
    status_code = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
