"""The engine's own logic on a small real model, real SQLite log, in-memory features."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest

from service.breaker import CircuitBreaker
from service.catalog import Catalog, ConsentPurpose
from service.decision_log import ContactHistory, CustomerSession, DecisionLog, Outcome
from service.engine import (
    DECISION_LOG_DOWN_NOTICE,
    FEATURE_STORE_DOWN_NOTICE,
    NO_PROFILING_NOTICE,
    UNKNOWN_CUSTOMER_NOTICE,
)
from service.errors import DecisionLogError, FeatureStoreError
from service.log_guard import GuardedDecisionLog
from service.rules import Rule
from service.vocabulary import ActionType, Touchpoint
from tests.unit.engine_kit import CALM_CUSTOMER, make_kit


def with_changes(catalog: Catalog, **policy: object) -> Catalog:
    raw = catalog.model_dump(mode="json")
    raw["policy"].update(policy)
    return Catalog.model_validate(raw)


def test_open_complaint_is_fixed_first_and_offers_say_why_not(catalog, model, tmp_path) -> None:
    kit = make_kit(
        catalog, model, tmp_path / "log.db", {"c1": {**CALM_CUSTOMER, "open_complaints": 1}}
    )
    decision = kit.engine.decide("c1", Touchpoint.CALL_CENTER)
    assert decision.chosen.action.id == "resolve_complaint"
    assert "must-do action (priority 10)" in decision.explanation
    offers = {d.action_id: d for d in decision.dropped if d.rule is Rule.ELIGIBILITY}
    assert "credit_card_offer" in offers
    assert (
        "open_complaints == 0 does not hold (open_complaints is 1)"
        in offers["credit_card_offer"].detail
    )
    assert all(s.action.type is not ActionType.OFFER for s in decision.ranked)


def test_ranking_by_tier_then_expected_value(catalog, model, tmp_path) -> None:
    kit = make_kit(catalog, model, tmp_path / "log.db", {"c0": CALM_CUSTOMER})
    decision = kit.engine.decide("c0", Touchpoint.EMAIL)
    threshold = catalog.policy.no_action_threshold
    above = [
        s for s in decision.ranked if s.propensity is not None and s.expected_value > threshold
    ]
    assert decision.ranked[: len(above)] == sorted(
        above, key=lambda s: s.expected_value, reverse=True
    )
    assert decision.ranked[len(above)].action.id == "no_action"
    for scored in above:
        assert scored.propensity is not None  # `above` kept only scored actions
        a = scored.action
        assert scored.expected_value == pytest.approx(
            scored.propensity * a.value * a.lever - a.cost
        )


def test_no_marketing_consent_leaves_only_non_marketing_actions(catalog, model, tmp_path) -> None:
    customer = {**CALM_CUSTOMER, "consent_marketing_store": 0}
    kit = make_kit(catalog, model, tmp_path / "log.db", {"c": customer})
    decision = kit.engine.decide("c", Touchpoint.STORE, with_reasons=True)
    assert all(s.action.consent is ConsentPurpose.NONE for s in decision.ranked)
    consent_drops = {d.action_id for d in decision.dropped if d.rule is Rule.MARKETING_CONSENT}
    marketing = {
        a.id for a in catalog.candidates(Touchpoint.STORE) if a.consent is ConsentPurpose.MARKETING
    }
    assert consent_drops == marketing
    # The same customer still gets marketing where they consented.
    web = kit.engine.decide("c", Touchpoint.WEB)
    assert not any(d.rule is Rule.MARKETING_CONSENT for d in web.dropped)


def test_profiling_objection_gives_a_non_personalised_answer(catalog, model, tmp_path) -> None:
    young = {**CALM_CUSTOMER, "age": 20, "consent_profiling": 0}
    old = {**CALM_CUSTOMER, "age": 80, "consent_profiling": 0}
    kit = make_kit(catalog, model, tmp_path / "log.db", {"young": young, "old": old})
    a = kit.engine.decide("young", Touchpoint.WEB)
    b = kit.engine.decide("old", Touchpoint.WEB)
    assert not a.personalised and a.notices == [NO_PROFILING_NOTICE]
    assert a.reasons == []
    # No customer feature reached the model: actions both may get have the same scores.
    scores_a = {s.action.id: s.propensity for s in a.ranked}
    scores_b = {s.action.id: s.propensity for s in b.ranked}
    common = scores_a.keys() & scores_b.keys()
    assert len(common) > 3
    assert all(scores_a[k] == scores_b[k] for k in common)


def test_unknown_customer_gets_no_marketing_and_no_personalisation(
    catalog, model, tmp_path
) -> None:
    kit = make_kit(catalog, model, tmp_path / "log.db", {})
    decision = kit.engine.decide("nobody", Touchpoint.STORE)
    assert not decision.personalised
    assert decision.notices == [UNKNOWN_CUSTOMER_NOTICE]
    assert all(s.action.consent is ConsentPurpose.NONE for s in decision.ranked)
    unknown = [d for d in decision.dropped if d.rule is Rule.ELIGIBILITY]
    assert unknown and all("unknown" in d.detail for d in unknown)


def test_reasons_come_from_feature_contributions(catalog, model, tmp_path) -> None:
    kit = make_kit(catalog, model, tmp_path / "log.db", {"c": {**CALM_CUSTOMER, "age": 22}})
    decision = kit.engine.decide("c", Touchpoint.WEB)
    assert decision.chosen.propensity is not None
    contributions = [r.contribution for r in decision.reasons]
    assert contributions == sorted(contributions, reverse=True)
    assert all(c > 0 for c in contributions)
    by_feature = {r.feature: r for r in decision.reasons}
    # In this model both no complaint and a young age raise acceptance of offers.
    assert by_feature["age"].value == 22
    assert by_feature["age"].text.startswith("Age of the customer in years: 22")
    assert by_feature["open_complaints"].text.startswith("Complaints not yet resolved: 0")
    assert kit.engine.decide("c", Touchpoint.WEB, with_reasons=False).reasons == []


def test_action_cap_and_customer_cap_read_the_decision_log(catalog, model, tmp_path) -> None:
    kit = make_kit(
        with_changes(catalog, customer_contact_cap={"max_count": 3, "window_days": 7}),
        model,
        tmp_path / "log.db",
        {"c": CALM_CUSTOMER},
    )
    shown = [kit.engine.decide("c", Touchpoint.CALL_CENTER).chosen.action.id for _ in range(3)]
    assert "no_action" not in shown
    fourth = kit.engine.decide("c", Touchpoint.CALL_CENTER)
    assert fourth.chosen.action.id == "no_action"
    assert {d.rule for d in fourth.dropped} >= {Rule.CUSTOMER_CONTACT_CAP}
    assert any("3 contacts in the last 7 days" in d.detail for d in fourth.dropped)
    kit.clock.advance(8)  # the customer cap window has passed; per-action 30-day caps remain
    later = kit.engine.decide("c", Touchpoint.CALL_CENTER)
    for action_id, count in Counter(shown).items():
        cap = catalog.by_id(action_id).contact_policy.cap
        if cap and count >= cap.max_count:
            drop = next(d for d in later.dropped if d.action_id == action_id)
            assert drop.rule is Rule.ACTION_CONTACT_CAP


def test_rejection_starts_a_cool_down(catalog, model, tmp_path) -> None:
    kit = make_kit(catalog, model, tmp_path / "log.db", {"c": CALM_CUSTOMER})
    first = kit.engine.decide("c", Touchpoint.CALL_CENTER)
    action = first.chosen.action
    assert kit.log.record_feedback(first.decision_id, action.id, Outcome.REJECT, kit.clock())
    kit.clock.advance(1)
    nextday = kit.engine.decide("c", Touchpoint.CALL_CENTER)
    drop = next(d for d in nextday.dropped if d.action_id == action.id)
    assert drop.rule is Rule.COOLDOWN_AFTER_REJECT
    assert "said no 1.0 days ago" in drop.detail
    kit.clock.advance(action.contact_policy.cooldown_days_after_reject + 1)
    much_later = kit.engine.decide("c", Touchpoint.CALL_CENTER)
    assert action.id not in {
        d.action_id for d in much_later.dropped if d.rule is Rule.COOLDOWN_AFTER_REJECT
    }


def test_nothing_above_the_threshold_answers_no_action(catalog, model, tmp_path) -> None:
    kit = make_kit(
        with_changes(catalog, no_action_threshold=10_000),
        model,
        tmp_path / "l.db",
        {"c": CALM_CUSTOMER},
    )
    decision = kit.engine.decide("c", Touchpoint.CALL_CENTER)
    assert decision.chosen.action.id == "no_action"
    assert decision.explanation.startswith("No action")
    assert decision.selection_probability == 1.0


def test_expired_and_future_actions_are_dropped(catalog, model, tmp_path) -> None:
    raw = catalog.model_dump(mode="json")
    for entry in raw["actions"]:
        if entry["id"] == "security_tips":
            entry["valid_until"] = "2020-01-01"
        if entry["id"] == "rate_change_notice":
            entry["valid_from"] = "2099-01-01"
    kit = make_kit(Catalog.model_validate(raw), model, tmp_path / "l.db", {"c": CALM_CUSTOMER})
    dropped = {d.action_id: d.rule for d in kit.engine.decide("c", Touchpoint.STORE).dropped}
    assert dropped["security_tips"] is Rule.EXPIRED
    assert dropped["rate_change_notice"] is Rule.NOT_YET_VALID


def test_concurrent_requests_for_one_customer_respect_the_cap(catalog, model, tmp_path) -> None:
    capped = with_changes(catalog, customer_contact_cap={"max_count": 2, "window_days": 7})
    db = tmp_path / "log.db"
    customers = {"c": CALM_CUSTOMER}
    # Two engines on one file: separate connections, as two worker processes would have.
    kits = [make_kit(capped, model, db, customers), make_kit(capped, model, db, customers)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(
            pool.map(lambda i: kits[i % 2].engine.decide("c", Touchpoint.CALL_CENTER), range(40))
        )
    shown = [r for r in results if r.chosen.action.id != "no_action"]
    assert len(shown) == 2
    frame = kits[0].log.decisions_frame()
    assert len(frame) == 40
    assert (frame["chosen_action"] != "no_action").sum() == 2


class DownFeatures:
    def read(self, customer_id: str) -> dict[str, object] | None:
        raise FeatureStoreError("online feature read failed: connection refused")


class DownLog:
    """A decision log whose database is unreachable."""

    def __init__(self, inner: DecisionLog) -> None:
        self.inner = inner
        self.down = True

    @contextmanager
    def customer_session(self, customer_id: str) -> Iterator[CustomerSession]:
        if self.down:
            raise DecisionLogError("decision log unavailable: connection refused")
        with self.inner.customer_session(customer_id) as session:
            yield session

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_feature_store_down_gives_a_degraded_answer_without_marketing(
    catalog, model, tmp_path
) -> None:
    kit = make_kit(catalog, model, tmp_path / "log.db", {"c": CALM_CUSTOMER})
    kit.engine.features = DownFeatures()
    decision = kit.engine.decide("c", Touchpoint.WEB)
    assert decision.degraded == ("feature_store",)
    assert not decision.personalised
    assert decision.logged
    assert decision.notices == [FEATURE_STORE_DOWN_NOTICE]
    marketing = {a.id for a in catalog.actions if a.consent is ConsentPurpose.MARKETING}
    assert decision.chosen.action.id not in marketing
    assert {d.action_id for d in decision.dropped if d.rule is Rule.MARKETING_CONSENT} >= (
        marketing & {a.id for a in catalog.actions if Touchpoint.WEB in a.touchpoints}
    )


def test_decision_log_down_answers_no_action_unlogged_and_recovers(
    catalog, model, tmp_path
) -> None:
    kit = make_kit(catalog, model, tmp_path / "log.db", {"c": CALM_CUSTOMER})
    down = DownLog(kit.log)
    kit.engine.decision_log = down
    decision = kit.engine.decide("c", Touchpoint.WEB)
    assert decision.chosen.action.id == "no_action"
    assert not decision.logged
    assert decision.degraded == ("decision_log",)
    assert decision.personalised  # features were read; only the contact history is missing
    assert DECISION_LOG_DOWN_NOTICE in decision.notices
    assert "contact caps cannot be" in decision.explanation
    unavailable = {
        d.action_id for d in decision.dropped if d.rule is Rule.CONTACT_HISTORY_UNAVAILABLE
    }
    assert unavailable and "no_action" not in unavailable
    assert len(kit.log.decisions_frame()) == 0

    down.down = False
    again = kit.engine.decide("c", Touchpoint.WEB)
    assert again.logged and again.degraded == ()
    assert list(kit.log.decisions_frame()["decision_id"]) == [again.decision_id]


class AppendFailsLog(DownLog):
    """The history reads, then the write of the decision fails (the database went away)."""

    @contextmanager
    def customer_session(self, customer_id: str) -> Iterator[CustomerSession]:
        with self.inner.customer_session(customer_id) as session:
            yield AppendFails(session)


class AppendFails:
    def __init__(self, session: CustomerSession) -> None:
        self.session = session

    def history(self, since: float) -> ContactHistory:
        return self.session.history(since)

    def append(self, record: object) -> None:
        raise DecisionLogError("decision log unavailable: connection reset")


def test_a_failed_decision_write_drops_each_candidate_once(catalog, model, tmp_path) -> None:
    kit = make_kit(catalog, model, tmp_path / "log.db", {"c": CALM_CUSTOMER})
    capped = [kit.engine.decide("c", Touchpoint.WEB) for _ in range(6)][-1]
    assert any(d.rule is Rule.CUSTOMER_CONTACT_CAP for d in capped.dropped)  # caps apply now
    kit.engine.decision_log = AppendFailsLog(kit.log)
    decision = kit.engine.decide("c", Touchpoint.WEB)
    assert decision.chosen.action.id == "no_action" and not decision.logged
    ids = [d.action_id for d in decision.dropped]
    assert len(ids) == len(set(ids))
    assert len(kit.log.decisions_frame()) == 6


class CommitAnswerLostLog(DownLog):
    """The commit lands, but its answer is lost (the connection died after the COMMIT)."""

    @contextmanager
    def customer_session(self, customer_id: str) -> Iterator[CustomerSession]:
        with self.inner.customer_session(customer_id) as session:
            yield session
        if self.down:
            raise DecisionLogError("decision log write failed: server closed the connection")


def test_a_commit_in_doubt_is_answered_under_another_id_and_voided_when_the_log_is_back(
    catalog, model, tmp_path
) -> None:
    kit = make_kit(catalog, model, tmp_path / "log.db", {"c": CALM_CUSTOMER})
    lossy = CommitAnswerLostLog(kit.log)
    guarded = GuardedDecisionLog(lossy, CircuitBreaker("decision_log", DecisionLogError, 0.0))
    kit.engine.decision_log = guarded
    decision = kit.engine.decide("c", Touchpoint.WEB)
    assert not decision.logged and decision.degraded == ("decision_log",)
    in_doubt = list(kit.log.decisions_frame()["decision_id"])
    assert len(in_doubt) == 1 and decision.decision_id not in in_doubt  # it did land
    assert guarded.in_doubt == 1

    lossy.down = False
    again = kit.engine.decide("c", Touchpoint.WEB)
    assert again.logged
    assert list(kit.log.decisions_frame()["decision_id"]) == [again.decision_id]
    assert guarded.in_doubt == 0
