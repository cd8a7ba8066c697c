"""Domain errors. Each carries a stable machine-readable code and the HTTP status it maps to."""

from __future__ import annotations


class NBAError(Exception):
    """Base class of every error this project raises on purpose."""

    code = "internal_error"
    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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
