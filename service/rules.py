"""Rules that remove candidates before scoring: validity window, consent and eligibility.

Every rule that removes an action says which rule it was and why, so the service can
answer "why not X". Conditions are data (feature, operator, constant), never code.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from service.catalog import Action, Condition, ConsentPurpose, Operator
from service.vocabulary import Touchpoint

PROFILING_CONSENT = "consent_profiling"


def marketing_consent_feature(touchpoint: Touchpoint) -> str:
    """The feature that holds marketing consent for a touchpoint's channel."""
    return f"consent_marketing_{touchpoint.value}"


CONSENT_FEATURES = (*(marketing_consent_feature(tp) for tp in Touchpoint), PROFILING_CONSENT)


class Rule(StrEnum):
    """Stable names of the rules that can remove a candidate."""

    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    MARKETING_CONSENT = "marketing_consent"
    ELIGIBILITY = "eligibility"
    ACTION_CONTACT_CAP = "action_contact_cap"
    CUSTOMER_CONTACT_CAP = "customer_contact_cap"
    COOLDOWN_AFTER_REJECT = "cooldown_after_reject"
    CONTACT_HISTORY_UNAVAILABLE = "contact_history_unavailable"


@dataclass(frozen=True)
class Drop:
    """A candidate removed by a rule, with a sentence a person can read."""

    action_id: str
    rule: Rule
    detail: str


@dataclass(frozen=True)
class Consent:
    """A customer's consent as read from the feature store; missing means not given."""

    marketing: frozenset[Touchpoint]
    profiling: bool

    @classmethod
    def from_features(cls, values: Mapping[str, Any] | None) -> Consent:
        """Read consent flags; an unknown customer has given no consent."""
        if values is None:
            return cls(frozenset(), False)
        marketing = frozenset(
            tp for tp in Touchpoint if values.get(marketing_consent_feature(tp)) == 1
        )
        return cls(marketing, values.get(PROFILING_CONSENT) == 1)


_COMPARE: dict[Operator, Callable[[float, Any], bool]] = {
    Operator.EQ: operator.eq,
    Operator.NE: operator.ne,
    Operator.LT: operator.lt,
    Operator.LE: operator.le,
    Operator.GT: operator.gt,
    Operator.GE: operator.ge,
    Operator.IN: lambda x, values: x in values,
    Operator.NOT_IN: lambda x, values: x not in values,
}


def failed_condition(
    conditions: tuple[Condition, ...], values: Mapping[str, Any] | None
) -> str | None:
    """The first condition that does not hold, described; None when all hold.

    A missing feature value fails the condition: an unknown fact never makes an action eligible.
    """
    for condition in conditions:
        value = None if values is None else values.get(condition.feature)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return f"{condition.describe()} cannot be checked: {condition.feature} is unknown"
        if not _COMPARE[condition.op](float(value), condition.value):
            return f"{condition.describe()} does not hold ({condition.feature} is {float(value):g})"
    return None


def outside_validity(action: Action, today: date) -> Drop | None:
    """The validity-window rule: why the action is not valid today, or None."""
    if action.valid_from and today < action.valid_from:
        return Drop(action.id, Rule.NOT_YET_VALID, f"valid from {action.valid_from}")
    if action.valid_until and today > action.valid_until:
        return Drop(action.id, Rule.EXPIRED, f"valid until {action.valid_until}")
    return None


_COMPARE_COLUMNS: dict[Operator, Callable[[np.ndarray, Any], np.ndarray]] = {
    Operator.EQ: np.equal,
    Operator.NE: np.not_equal,
    Operator.LT: np.less,
    Operator.LE: np.less_equal,
    Operator.GT: np.greater,
    Operator.GE: np.greater_equal,
    Operator.IN: np.isin,
    Operator.NOT_IN: lambda x, values: ~np.isin(x, values),
}


def eligible_rows(action: Action, customers: pd.DataFrame, today: date) -> np.ndarray:
    """Mask of the customers (a row each) for whom `pre_scoring_drop` allows the action,
    consent taken as given: its validity window and eligibility conditions, for many rows.

    As in `failed_condition`, a missing value (absent column, NaN) fails its condition.
    """
    allowed = np.full(len(customers), outside_validity(action, today) is None)
    for condition in action.eligibility:
        if condition.feature not in customers.columns:
            return np.zeros(len(customers), dtype=bool)
        column = customers[condition.feature].to_numpy(dtype=np.float64, na_value=np.nan)
        allowed &= ~np.isnan(column) & _COMPARE_COLUMNS[condition.op](column, condition.value)
    return allowed


def pre_scoring_drop(
    action: Action,
    values: Mapping[str, Any] | None,
    consent: Consent,
    touchpoint: Touchpoint,
    today: date,
) -> Drop | None:
    """Why an action may not be shown at all right now, or None when it may."""
    outside = outside_validity(action, today)
    if outside:
        return outside
    if action.consent is ConsentPurpose.MARKETING and touchpoint not in consent.marketing:
        return Drop(
            action.id,
            Rule.MARKETING_CONSENT,
            f"no marketing consent for {touchpoint.value}; only non-marketing actions there",
        )
    failed = failed_condition(action.eligibility, values)
    if failed:
        return Drop(action.id, Rule.ELIGIBILITY, failed)
    return None
