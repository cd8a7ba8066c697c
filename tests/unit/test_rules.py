from datetime import date
from typing import Any, cast

import numpy as np
import pandas as pd
import pytest

from service.catalog import Action, Condition, Operator, load_catalog
from service.rules import Consent, Rule, eligible_rows, failed_condition, pre_scoring_drop
from service.settings import DEFAULT_CATALOG
from service.vocabulary import ActionType, Touchpoint

TODAY = date(2026, 11, 22)


def offer(**changes: object) -> Action:
    base = {
        "id": "card",
        "type": "offer",
        "title": "Card",
        "script": "Card?",
        "touchpoints": ["web"],
        "value": 10,
        "cost": 1,
        "consent": "marketing",
    }
    return Action.model_validate({**base, **changes})


@pytest.mark.parametrize(
    ("op", "value", "feature_value", "holds"),
    [
        (Operator.EQ, 0, 0, True),
        (Operator.EQ, 0, 1, False),
        (Operator.NE, 0, 1, True),
        (Operator.LT, 12, 11, True),
        (Operator.LT, 12, 12, False),
        (Operator.LE, 12, 12, True),
        (Operator.GT, 0, 0, False),
        (Operator.GE, 1, 1, True),
        (Operator.IN, [1, 2], 2, True),
        (Operator.IN, [1, 2], 3, False),
        (Operator.NOT_IN, [1, 2], 3, True),
    ],
)
def test_operators(op: Operator, value: object, feature_value: float, holds: bool) -> None:
    condition = Condition(feature="x", op=op, value=value)
    assert (failed_condition((condition,), {"x": feature_value}) is None) is holds
    action = offer(eligibility=[condition])
    rows = eligible_rows(action, pd.DataFrame({"x": [feature_value, np.nan]}), TODAY)
    assert rows.tolist() == [holds, False]


def test_missing_values_never_make_an_action_eligible() -> None:
    condition = Condition(feature="x", op=Operator.NE, value=1)
    assert "unknown" in (failed_condition((condition,), {"x": None}) or "")
    assert "unknown" in (failed_condition((condition,), {"x": float("nan")}) or "")
    assert "unknown" in (failed_condition((condition,), None) or "")
    action = offer(eligibility=[condition])
    assert not eligible_rows(action, pd.DataFrame({"y": [0.0]}), TODAY).any()


def test_eligible_rows_agree_with_the_rules_of_one_decision() -> None:
    """The vectorised rules (training's candidate grid) and the per-decision rules (serving)."""
    catalog = load_catalog(DEFAULT_CATALOG)
    rng = np.random.default_rng(5)
    features = sorted({f for fs in catalog.referenced_features().values() for f in fs})
    frame = pd.DataFrame({f: rng.integers(0, 4, 300).astype(float) for f in features})
    frame = frame.mask(rng.uniform(size=frame.shape) < 0.1)  # some values missing
    everyone = Consent(frozenset(Touchpoint), True)
    records = cast(list[dict[str, Any]], frame.to_dict("records"))  # string column names
    for action in catalog.actions:
        for today in (TODAY, date(2020, 1, 1), date(2040, 1, 1)):
            expected = [
                pre_scoring_drop(action, r, everyone, Touchpoint.WEB, today) is None
                for r in records
            ]
            assert eligible_rows(action, frame, today).tolist() == expected, action.id


def test_list_operators_need_lists_and_others_do_not() -> None:
    with pytest.raises(ValueError, match="needs a list"):
        Condition(feature="x", op=Operator.IN, value=1)
    with pytest.raises(ValueError, match="single value"):
        Condition(feature="x", op=Operator.EQ, value=[1])


def test_conditions_are_data_not_code() -> None:
    with pytest.raises(ValueError):
        Condition(feature="__import__('os')", op=Operator.EQ, value=0)


def test_consent_reads_flags_and_defaults_to_no() -> None:
    consent = Consent.from_features(
        {"consent_marketing_web": 1, "consent_marketing_app": 0, "consent_profiling": 1}
    )
    assert consent.marketing == {Touchpoint.WEB} and consent.profiling
    assert Consent.from_features(None) == Consent(frozenset(), False)
    assert not Consent.from_features({"consent_marketing_web": None}).marketing


def test_marketing_needs_consent_for_the_touchpoint() -> None:
    no = Consent(frozenset({Touchpoint.APP}), True)
    drop = pre_scoring_drop(offer(), {}, no, Touchpoint.WEB, TODAY)
    assert drop is not None and drop.rule is Rule.MARKETING_CONSENT
    yes = Consent(frozenset({Touchpoint.WEB}), True)
    assert pre_scoring_drop(offer(), {}, yes, Touchpoint.WEB, TODAY) is None


def test_offers_and_retention_must_declare_marketing_consent() -> None:
    with pytest.raises(ValueError, match="need consent: marketing"):
        offer(consent="none")
    service = offer(type="service", consent="none")
    assert service.type is ActionType.SERVICE


def test_validity_window() -> None:
    consent = Consent(frozenset({Touchpoint.WEB}), True)
    future = offer(valid_from="2027-01-01")
    past = offer(valid_until="2026-11-21")
    not_yet = pre_scoring_drop(future, {}, consent, Touchpoint.WEB, TODAY)
    assert not_yet is not None
    assert not_yet.rule is Rule.NOT_YET_VALID
    expired = pre_scoring_drop(past, {}, consent, Touchpoint.WEB, TODAY)
    assert expired is not None
    assert expired.rule is Rule.EXPIRED
    customers = pd.DataFrame({"x": [1.0]})
    assert not eligible_rows(future, customers, TODAY).any()
    assert not eligible_rows(past, customers, TODAY).any()
    assert eligible_rows(past, customers, date(2026, 11, 21)).all()
    with pytest.raises(ValueError, match="before valid_from"):
        offer(valid_from="2027-01-01", valid_until="2026-01-01")
