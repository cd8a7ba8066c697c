"""Closed vocabularies shared by the catalog, the featurisation and the API."""

from enum import StrEnum


class Touchpoint(StrEnum):
    """Where the customer is when the calling system asks for a decision."""

    WEB = "web"
    APP = "app"
    CALL_CENTER = "call_center"
    EMAIL = "email"
    STORE = "store"


class ActionType(StrEnum):
    """What kind of action a catalog entry is."""

    OFFER = "offer"
    SERVICE = "service"
    RETENTION = "retention"
    INFO = "info"
    NO_ACTION = "no_action"


class ChallengerMode(StrEnum):
    """How the challenger takes part: not at all, serving a share of customers, or in shadow."""

    OFF = "off"
    SPLIT = "split"
    SHADOW = "shadow"


class Scope(StrEnum):
    """What an API key may do."""

    DECIDE = "decide"
    FEEDBACK = "feedback"
    REVIEW = "review"
    ADMIN = "admin"


class ModelRole(StrEnum):
    """Registry aliases the service follows."""

    CHAMPION = "champion"
    CHALLENGER = "challenger"
