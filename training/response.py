"""The simulator's hidden truth: how customers respond, and the legacy policy that logged them.

Nothing here is visible to the service. Evaluation code uses `accept_probability`
to compute the true value of any policy and the oracle's choice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from service.catalog import Action, Catalog
from service.vocabulary import ActionType

Columns = Mapping[str, np.ndarray]
LogitFn = Callable[[Columns], np.ndarray]

LATENT_COLUMNS = ("price_sensitivity",)

# The product a sales offer sells; the legacy rules never pitch a product already held.
HELD_PRODUCT: dict[str, str] = {
    "credit_card_offer": "has_credit_card",
    "personal_loan_offer": "has_personal_loan",
    "mortgage_consultation": "has_mortgage",
    "savings_account_offer": "has_savings",
    "investment_fund_offer": "has_investments",
    "premium_account_upgrade": "is_premium",
    "home_insurance_offer": "has_insurance",
}

# Products that customers prefer to discuss with a person.
ADVICE_PRODUCTS = frozenset(
    {"mortgage_consultation", "investment_fund_offer", "premium_account_upgrade"}
)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)


def _churn_risk(c: Columns) -> np.ndarray:
    complaint = (c["open_complaints"] > 0).astype(float)
    return _sigmoid(
        -5.0 * c["balance_trend_90d"]
        - 1.0 * c["salary_inflow"]
        + 1.2 * complaint
        - 1.5
        + 0.8 * c["price_sensitivity"]
    )


def _income_k(c: Columns) -> np.ndarray:
    return np.clip(c["monthly_income"] / 1000.0, 0.0, 15.0)


ACTION_LOGITS: dict[str, LogitFn] = {
    "credit_card_offer": lambda c: (
        -2.0
        - 4.0 * c["has_credit_card"]
        + 0.25 * (np.clip(_income_k(c), 0, 8) - 3)
        + 0.5 * (c["age"] < 35)
        + 0.06 * np.minimum(c["travel_transactions_90d"], 10)
    ),
    "personal_loan_offer": lambda c: (
        -3.4
        - 3.0 * c["has_personal_loan"]
        + 1.8 * (c["balance"] < 1000)
        + 0.6 * (c["monthly_card_spend"] > 0.5 * c["monthly_income"])
        + 0.5 * ((c["age"] >= 25) & (c["age"] <= 45))
    ),
    "mortgage_consultation": lambda c: (
        -4.6
        - 5.0 * c["has_mortgage"]
        + 2.6 * ((c["age"] >= 28) & (c["age"] <= 45))
        + 0.3 * np.clip(_income_k(c) - 3, -2, 5)
        + 0.4 * c["salary_inflow"]
    ),
    "savings_account_offer": lambda c: (
        -2.2 - 3.0 * c["has_savings"] + 0.8 * (c["balance"] > 5000) + 0.3 * c["salary_inflow"]
    ),
    "investment_fund_offer": lambda c: (
        -3.8
        - 3.0 * c["has_investments"]
        + 2.2 * (c["balance"] > 20000)
        + 0.03 * (c["age"] - 45)
        + 0.3 * c["is_premium"]
        - 0.6 * c["price_sensitivity"]
    ),
    "premium_account_upgrade": lambda c: (
        -3.0
        - 5.0 * c["is_premium"]
        + 0.35 * np.clip(_income_k(c) - 4, -3, 6)
        + 0.5 * (c["travel_transactions_90d"] > 4)
        - 0.8 * c["price_sensitivity"]
    ),
    "travel_insurance_offer": lambda c: (
        -3.0 + 0.35 * np.minimum(c["travel_transactions_90d"], 10) - 1.0 * c["is_premium"]
    ),
    "home_insurance_offer": lambda c: -2.8 + 1.8 * c["has_mortgage"] - 2.0 * c["has_insurance"],
    "overdraft_increase": lambda c: (
        -2.8
        + 1.5 * (c["balance"] < 500)
        + 0.5 * (c["balance_trend_90d"] < -0.2)
        - 0.5 * (c["age"] > 60)
    ),
    "resolve_complaint": lambda c: -6.0 + 7.5 * (c["open_complaints"] > 0),
    "onboarding_help": lambda c: (
        -4.0 + 4.5 * (c["tenure_months"] < 6) - 0.5 * np.clip(c["digital_logins_30d"] / 30, 0, 1.5)
    ),
    "digital_banking_setup": lambda c: (
        -3.0
        + 2.2 * ((c["app_sessions_30d"] == 0) & (c["age"] < 65))
        - 2.5 * (c["app_sessions_30d"] > 0)
    ),
    "financial_health_check": lambda c: (
        -3.0 + 1.2 * (c["balance_trend_90d"] < -0.15) + 0.6 * (c["balance"] < 1000)
    ),
    "fee_waiver": lambda c: -3.5 + 4.0 * _churn_risk(c) + 0.6 * c["price_sensitivity"],
    "loyalty_rate_bonus": lambda c: (
        -3.8
        + 3.5 * _churn_risk(c) * (c["tenure_months"] > 36)
        + 0.6 * c["has_savings"]
        + 0.4 * c["price_sensitivity"]
    ),
    "retention_call_back": lambda c: (
        -3.6 + 4.5 * _churn_risk(c) - 0.5 * np.clip(c["digital_logins_30d"] / 30, 0, 1.5)
    ),
    "security_tips": lambda c: -2.5 + 0.9 * (c["age"] > 60),
    "new_app_features": lambda c: -3.0 + 1.5 * (c["app_sessions_30d"] > 5),
    "rate_change_notice": lambda c: -3.2 + 1.0 * c["has_savings"] + 0.5 * (c["balance"] > 10000),
}

# How an open complaint shifts acceptance, by action type: offers are refused.
COMPLAINT_SHIFT: dict[ActionType, float] = {
    ActionType.OFFER: -3.0,
    ActionType.RETENTION: 0.3,
    ActionType.INFO: -0.5,
    ActionType.SERVICE: 0.0,
    ActionType.NO_ACTION: 0.0,
}


def _touchpoint_shift(touchpoint: str, action_id: str, c: Columns) -> np.ndarray:
    digital = np.clip(c["digital_logins_30d"] / 30.0, 0.0, 1.5)
    advice = action_id in ADVICE_PRODUCTS
    if touchpoint == "web":
        return 0.8 * (digital - 0.5) - (0.2 if advice else 0.0)
    if touchpoint == "app":
        return 1.0 * (digital - 0.5) + 0.3 - (0.4 if advice else 0.0)
    if touchpoint == "call_center":
        return 0.6 * (0.5 - digital) + 0.2 + (0.8 if advice else 0.0)
    if touchpoint == "store":
        return 0.8 * (0.5 - digital) + 0.4 + (0.8 if advice else 0.0)
    if touchpoint == "email":
        return np.full(len(digital), -0.7)
    raise ValueError(f"unknown touchpoint {touchpoint!r}")


def accept_probability(
    states: pd.DataFrame,
    action_ids: np.ndarray,
    touchpoints: np.ndarray,
    catalog: Catalog,
) -> np.ndarray:
    """True probability that each (customer state, action, touchpoint) row is accepted.

    `states` holds the customer's features at decision time plus the latent columns.
    """
    action_ids = np.asarray(action_ids)
    touchpoints = np.asarray(touchpoints)
    logit = np.full(len(states), -np.inf)
    numeric = states.select_dtypes("number")
    all_cols = {name: numeric[name].to_numpy(dtype=np.float64) for name in numeric.columns}
    for action_id in np.unique(action_ids):
        action = catalog.by_id(str(action_id))
        if action.type is ActionType.NO_ACTION:
            continue
        for touchpoint in np.unique(touchpoints[action_ids == action_id]):
            mask = (action_ids == action_id) & (touchpoints == touchpoint)
            cols = {name: values[mask] for name, values in all_cols.items()}
            complaint = (cols["open_complaints"] > 0).astype(float)
            logit[mask] = (
                ACTION_LOGITS[action.id](cols)
                + _touchpoint_shift(str(touchpoint), action.id, cols)
                + COMPLAINT_SHIFT[action.type] * complaint
            )
    probability = np.clip(_sigmoid(logit), 0.002, 0.95)
    probability[np.isneginf(logit)] = 0.0
    return np.asarray(probability, dtype=np.float64)


def legacy_choice_scores(states: pd.DataFrame, candidates: list[Action]) -> np.ndarray:
    """Legacy rules: pitch the most valuable product the customer does not hold yet.

    Returns an (n_rows, n_candidates) score matrix; the rule picks the argmax.
    Actions that are not sales offers score 0, so security tips win when nothing is left.
    """
    scores = np.zeros((len(states), len(candidates)))
    for j, action in enumerate(candidates):
        if action.type is ActionType.OFFER:
            held = states[HELD_PRODUCT[action.id]].to_numpy() if action.id in HELD_PRODUCT else 0
            scores[:, j] = np.where(held == 1, -1.0, action.value)
        elif action.id == "security_tips":
            scores[:, j] = 0.5
    return scores


def logging_probabilities(
    states: pd.DataFrame, candidates: list[Action], exploration: float
) -> np.ndarray:
    """Probability of each candidate under legacy rules with epsilon-uniform exploration."""
    n_candidates = len(candidates)
    rule = legacy_choice_scores(states, candidates).argmax(axis=1)
    probabilities = np.full((len(states), n_candidates), exploration / n_candidates)
    probabilities[np.arange(len(states)), rule] += 1.0 - exploration
    return probabilities
