"""Property tests: consent and contact caps hold whatever the features and the catalog."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.catalog import Catalog, ConsentPurpose
from service.model import LoadedModel
from service.rules import marketing_consent_feature
from service.vocabulary import ActionType, Touchpoint
from tests.unit.engine_kit import make_kit

FEATURES = ("age", "open_complaints", "has_credit_card")
TOUCHPOINTS = [tp.value for tp in Touchpoint]

conditions = st.lists(
    st.fixed_dictionaries(
        {
            "feature": st.sampled_from(FEATURES),
            "op": st.sampled_from(["eq", "ne", "lt", "le", "gt", "ge"]),
            "value": st.integers(0, 80),
        }
    ),
    max_size=2,
)
caps = st.none() | st.fixed_dictionaries(
    {
        "max_count": st.integers(0, 3),
        "window_days": st.sampled_from([1, 7, 30]),
    }
)


@st.composite
def actions(draw: st.DrawFn, index: int) -> dict[str, Any]:
    kind = draw(st.sampled_from(["offer", "service", "retention", "info"]))
    needs_marketing = kind in ("offer", "retention")
    return {
        "id": f"action_{index}",
        "type": kind,
        "title": "t",
        "script": "s",
        "touchpoints": draw(st.lists(st.sampled_from(TOUCHPOINTS), min_size=1, unique=True)),
        "value": draw(st.floats(0, 1000)),
        "cost": draw(st.floats(0, 50)),
        "consent": "marketing" if needs_marketing else draw(st.sampled_from(["none", "marketing"])),
        "eligibility": draw(conditions),
        "priority": draw(st.sampled_from([0, 0, 5])),
        "contact_policy": {"cap": draw(caps)},
    }


@st.composite
def catalogs(draw: st.DrawFn) -> Catalog:
    n = draw(st.integers(1, 6))
    entries = [draw(actions(i)) for i in range(n)]
    entries.append(
        {
            "id": "no_action",
            "type": "no_action",
            "title": "n",
            "script": "n",
            "touchpoints": TOUCHPOINTS,
            "value": 0,
            "cost": 0,
            "consent": "none",
        }
    )
    policy = {
        "no_action_threshold": draw(st.floats(-5, 5)),
        "customer_contact_cap": draw(caps),
        "exploration": {
            tp: draw(
                st.sampled_from(
                    [
                        {"method": "none"},
                        {"method": "epsilon_greedy", "epsilon": 0.5},
                        {"method": "softmax", "temperature": 5},
                    ]
                )
            )
            for tp in TOUCHPOINTS
        },
    }
    return Catalog.model_validate({"policy": policy, "actions": entries})


flag = st.sampled_from([0, 1, None])
customers = st.none() | st.fixed_dictionaries(
    {
        **{f: st.none() | st.integers(0, 90) for f in FEATURES},
        **{marketing_consent_feature(tp): flag for tp in Touchpoint},
        "consent_profiling": flag,
    }
)

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(catalog=catalogs(), customer=customers, touchpoint=st.sampled_from(list(Touchpoint)))
def test_consent_is_never_violated(
    model: LoadedModel, catalog: Catalog, customer: dict[str, Any] | None, touchpoint: Touchpoint
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = {} if customer is None else {"c": customer}
        kit = make_kit(catalog, model, Path(tmp) / "log.db", rows)
        decision = kit.engine.decide("c", touchpoint)
        kit.log.close()
    consented = customer is not None and customer[marketing_consent_feature(touchpoint)] == 1
    for scored in [decision.chosen, *decision.ranked]:
        if scored.action.consent is ConsentPurpose.MARKETING:
            assert consented, f"{scored.action.id} shown without marketing consent"
        assert touchpoint in scored.action.touchpoints
    profiling = customer is not None and customer["consent_profiling"] == 1
    if not profiling:
        assert not decision.personalised and decision.reasons == []
    assert 0 < decision.selection_probability <= 1
    assert decision.chosen in decision.ranked


def _max_in_window(times: list[float], window: float) -> int:
    return max((sum(1 for u in times if t - window <= u <= t) for t in times), default=0)


@SETTINGS
@given(
    catalog=catalogs(),
    steps=st.lists(
        st.tuples(st.sampled_from([0.0, 0.2, 1.0, 3.0, 8.0]), st.sampled_from(list(Touchpoint))),
        min_size=1,
        max_size=15,
    ),
)
def test_contact_caps_hold_over_any_sequence(
    model: LoadedModel, catalog: Catalog, steps: list[tuple[float, Touchpoint]]
) -> None:
    customer = {
        **dict.fromkeys(FEATURES, 1),
        "age": 30,
        "consent_profiling": 1,
        **{marketing_consent_feature(tp): 1 for tp in Touchpoint},
    }
    with tempfile.TemporaryDirectory() as tmp:
        kit = make_kit(catalog, model, Path(tmp) / "log.db", {"c": customer})
        shown: list[tuple[str, float]] = []
        for days, touchpoint in steps:
            kit.clock.advance(days)
            decision = kit.engine.decide("c", touchpoint)
            if decision.chosen.action.type is not ActionType.NO_ACTION:
                shown.append((decision.chosen.action.id, kit.clock()))
        kit.log.close()
    day = 86_400.0
    overall = catalog.policy.customer_contact_cap
    if overall:
        assert _max_in_window([t for _, t in shown], overall.window_days * day) <= overall.max_count
    for action in catalog.actions:
        cap = action.contact_policy.cap
        if cap:
            times = [t for a, t in shown if a == action.id]
            assert _max_in_window(times, cap.window_days * day) <= cap.max_count
