"""The decision engine: rules, scoring, contact policy, arbitration, exploration, log, reasons."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from service.arbitration import NO_ACTION_KEY, expected_values, rank_key
from service.catalog import Action
from service.catalog_holder import CatalogVersion
from service.contact_policy import contact_drops
from service.decision_log import (
    ContactHistory,
    DecisionLog,
    DecisionRecord,
    LoggedCandidate,
    ShadowRecord,
)
from service.errors import DecisionLogError, FeatureStoreError
from service.exploration import draw, selection_probabilities
from service.features import customer_vector, featurize
from service.model import LoadedModel
from service.reasons import Reason, top_reasons
from service.rules import Consent, Drop, Rule, pre_scoring_drop
from service.served_models import ModelChoice, ModelSet
from service.vocabulary import ModelRole, Touchpoint

UNKNOWN_CUSTOMER_NOTICE = "customer unknown to the feature store: the answer is not personalised"
NO_PROFILING_NOTICE = (
    "customer objected to profiling: no customer data went into the model, "
    "the answer is not personalised"
)
FEATURE_STORE_DOWN_NOTICE = (
    "feature store unavailable: the answer is not personalised and shows no marketing "
    "(consent cannot be read)"
)
DECISION_LOG_DOWN_NOTICE = (
    "decision log unavailable: contact caps cannot be checked, so no action is shown; "
    "this answer is not logged"
)
FEATURE_STORE = "feature_store"
DECISION_LOG = "decision_log"


class FeatureReader(Protocol):
    """Anything that returns one customer's online features (None when unknown)."""

    def read(self, customer_id: str) -> dict[str, Any] | None: ...


class ModelSource(Protocol):
    """Anything that says which model decides for a customer (see `ServedModels`)."""

    @property
    def current(self) -> ModelSet: ...

    def choose(self, customer_id: str) -> ModelChoice: ...


class CatalogSource(Protocol):
    """Anything that holds the catalog version to decide with (see `CatalogHolder`)."""

    @property
    def current(self) -> CatalogVersion: ...


@dataclass(frozen=True)
class ScoredAction:
    """A candidate with its predicted acceptance and expected value (EUR, levers applied)."""

    action: Action
    propensity: float | None
    expected_value: float


@dataclass(frozen=True)
class Decision:
    """The engine's answer for one customer at one touchpoint."""

    decision_id: str
    customer_id: str
    touchpoint: Touchpoint
    model: LoadedModel
    role: ModelRole
    personalised: bool
    chosen: ScoredAction
    ranked: list[ScoredAction]
    selection_probability: float
    explored: bool
    explanation: str
    reasons: list[Reason]
    dropped: list[Drop]
    notices: list[str]
    shadow: ShadowRecord | None = None
    logged: bool = False
    degraded: tuple[str, ...] = ()  # dependencies that were unavailable: feature_store, ...


@dataclass(frozen=True)
class _Arbitrated:
    """The outcome of the contact policy and arbitration inside a customer session."""

    ranked: list[ScoredAction]
    chosen: ScoredAction
    probability: float
    explored: bool
    eligible: int
    shadow: ShadowRecord | None


@dataclass(frozen=True)
class _Eligible:
    """Candidates that passed the pre-scoring rules, and the rows they hold in the touchpoint's
    candidate arrays."""

    actions: list[Action]
    rows: list[int]


@dataclass(frozen=True)
class _Scored:
    """Candidates that passed the pre-scoring rules, with their model output."""

    actions: list[Action]
    matrix: np.ndarray
    propensities: np.ndarray
    expected: np.ndarray


class DecisionEngine:
    """Turns (customer, touchpoint) into a logged, explained, value-weighted recommendation."""

    def __init__(
        self,
        catalogs: CatalogSource,
        models: ModelSource,
        features: FeatureReader,
        decision_log: DecisionLog,
        descriptions: Mapping[str, str],
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.catalogs = catalogs
        self.models = models
        self.features = features
        self.decision_log = decision_log
        self.descriptions = descriptions
        self._rng = rng or random.Random()
        self._clock = clock

    def decide(
        self,
        customer_id: str,
        touchpoint: Touchpoint,
        with_reasons: bool = True,
        record: bool = True,
    ) -> Decision:
        """Apply rules, score, cap, arbitrate, explore, log; then explain the shown action.

        `record=False` is a dry run (the decision explorer): nothing is logged, so it
        neither counts as a contact nor can receive feedback.
        """
        version = self.catalogs.current
        choice = self.models.choose(customer_id)
        model = choice.served
        now = self._clock()
        notices: list[str] = []
        degraded: list[str] = []
        try:
            values = self.features.read(customer_id)
        except FeatureStoreError:
            values = None
            degraded.append(FEATURE_STORE)
            notices.append(FEATURE_STORE_DOWN_NOTICE)
        consent = Consent.from_features(values)
        personalised = values is not None and consent.profiling
        if values is None and not degraded:
            notices.append(UNKNOWN_CUSTOMER_NOTICE)
        elif values is not None and not consent.profiling:
            notices.append(NO_PROFILING_NOTICE)

        dropped, eligible = self._eligible(version, values, consent, touchpoint, now)
        known = values if personalised else None
        scored = self._score(model, version, touchpoint, eligible, known)
        shadow_scored = (
            self._score(choice.shadow, version, touchpoint, eligible, known)
            if choice.shadow is not None
            else None
        )
        decision_id = str(uuid.uuid4())
        before_policy = len(dropped)
        try:
            with self.decision_log.customer_session(customer_id) as session:
                history = session.history(now - version.lookback)
                outcome = self._arbitrate_with_history(
                    version, choice, scored, shadow_scored, history, now, touchpoint, dropped
                )
                if record:
                    session.append(
                        DecisionRecord(
                            decision_id=decision_id,
                            created_at=now,
                            customer_id=customer_id,
                            touchpoint=touchpoint.value,
                            model_name=model.name,
                            model_version=model.version,
                            personalised=personalised,
                            chosen_action=outcome.chosen.action.id,
                            selection_probability=outcome.probability,
                            explored=outcome.explored,
                            candidates=tuple(
                                LoggedCandidate(s.action.id, s.propensity, s.expected_value)
                                for s in outcome.ranked
                            ),
                            shadow=outcome.shadow,
                        )
                    )
            logged = record
        except DecisionLogError:
            # a failed commit may still have landed (see GuardedDecisionLog): the unlogged
            # answer never carries the ID of a record that may exist
            decision_id = str(uuid.uuid4())
            del dropped[before_policy:]  # the log failed after the caps were checked
            outcome = self._without_history(version, scored, dropped)
            logged = False
            degraded.append(DECISION_LOG)
            notices.append(DECISION_LOG_DOWN_NOTICE)

        chosen = outcome.chosen
        reasons: list[Reason] = []
        if with_reasons and personalised and chosen.propensity is not None and values is not None:
            row = scored.actions.index(chosen.action)
            reasons = top_reasons(model, scored.matrix[row : row + 1], values, self.descriptions)
        explanation = (
            self._explain(version, chosen, outcome.explored, outcome.eligible)
            if DECISION_LOG not in degraded
            else "No action: the decision log is unavailable, so the contact caps cannot be "
            "checked; nothing is shown until it is back."
        )
        return Decision(
            decision_id=decision_id,
            customer_id=customer_id,
            touchpoint=touchpoint,
            model=model,
            role=choice.role,
            personalised=personalised,
            chosen=chosen,
            ranked=outcome.ranked,
            selection_probability=outcome.probability,
            explored=outcome.explored,
            explanation=explanation,
            reasons=reasons,
            dropped=dropped,
            notices=notices,
            shadow=outcome.shadow,
            logged=logged,
            degraded=tuple(degraded),
        )

    def _arbitrate_with_history(
        self,
        version: CatalogVersion,
        choice: ModelChoice,
        scored: _Scored,
        shadow_scored: _Scored | None,
        history: ContactHistory,
        now: float,
        touchpoint: Touchpoint,
        dropped: list[Drop],
    ) -> _Arbitrated:
        """Contact policy over the customer's history, arbitration and the exploration draw;
        the capped candidates are added to `dropped`."""
        capped = contact_drops(version.catalog, scored.actions, history, now)
        dropped.extend(capped)
        blocked = {d.action_id for d in capped}
        keep = [i for i, a in enumerate(scored.actions) if a.id not in blocked]
        ranked, pool, greedy = self._arbitrate(version, scored, keep)
        probabilities = selection_probabilities(
            np.array([s.expected_value for s in pool]),
            greedy,
            version.catalog.policy.exploration_at(touchpoint),
        )
        shown = draw(probabilities, self._rng)
        shadow = None
        if choice.shadow is not None and shadow_scored is not None:
            shadow = self._shadow(version, choice.shadow, shadow_scored, keep)
        return _Arbitrated(
            ranked, pool[shown], float(probabilities[shown]), shown != greedy, len(keep), shadow
        )

    @staticmethod
    def _without_history(
        version: CatalogVersion, scored: _Scored, dropped: list[Drop]
    ) -> _Arbitrated:
        """No contact history (the decision log is down): caps cannot be checked, so every
        candidate is dropped and the answer is no_action; trust before a sale."""
        dropped.extend(
            Drop(
                action.id,
                Rule.CONTACT_HISTORY_UNAVAILABLE,
                "the decision log is unavailable: contact caps and cool-downs cannot be checked",
            )
            for action in scored.actions
        )
        threshold = version.catalog.policy.no_action_threshold
        nothing = ScoredAction(version.catalog.no_action, None, threshold)
        return _Arbitrated([nothing], nothing, 1.0, False, 0, None)

    def warm_up(self) -> None:
        """Run the read and scoring paths of every model once per touchpoint, logging nothing."""
        version = self.catalogs.current
        values = self.features.read("__warmup__")
        everyone = Consent(frozenset(Touchpoint), True)
        models = self.models.current
        for model in (models.champion, models.challenger):
            for touchpoint in Touchpoint:
                if model is None:
                    continue
                _, eligible = self._eligible(version, values, everyone, touchpoint, 0.0)
                scored = self._score(model, version, touchpoint, eligible, values)
                if len(scored.actions):
                    model.contributions(scored.matrix[:1])

    @staticmethod
    def _eligible(
        version: CatalogVersion,
        values: dict[str, Any] | None,
        consent: Consent,
        touchpoint: Touchpoint,
        now: float,
    ) -> tuple[list[Drop], _Eligible]:
        candidates = version.by_touchpoint[touchpoint]
        today = datetime.fromtimestamp(now, UTC).date()
        dropped: list[Drop] = []
        rows: list[int] = []
        for i, action in enumerate(candidates.actions):
            drop = pre_scoring_drop(action, values, consent, touchpoint, today)
            if drop:
                dropped.append(drop)
            else:
                rows.append(i)
        return dropped, _Eligible([candidates.actions[i] for i in rows], rows)

    @staticmethod
    def _score(
        model: LoadedModel,
        version: CatalogVersion,
        touchpoint: Touchpoint,
        eligible: _Eligible,
        values: dict[str, Any] | None,
    ) -> _Scored:
        """Propensities and expected values of the eligible actions (`values` None: no
        customer data goes into the model)."""
        candidates = version.by_touchpoint[touchpoint]
        rows = eligible.rows
        spec = model.spec
        matrix = featurize(
            spec,
            customer_vector(spec, values),
            [candidates.ids[i] for i in rows],
            [candidates.types[i] for i in rows],
            [touchpoint.value] * len(rows),
        )
        propensities = model.predict(matrix) if rows else np.empty(0)
        expected = expected_values(
            propensities * candidates.levers[rows], candidates.values[rows], candidates.costs[rows]
        )
        return _Scored(eligible.actions, matrix, propensities, expected)

    @classmethod
    def _shadow(
        cls, version: CatalogVersion, model: LoadedModel, scored: _Scored, keep: list[int]
    ) -> ShadowRecord:
        """What the shadow model would have shown (its arbitration winner, no exploration)."""
        ranked, pool, greedy = cls._arbitrate(version, scored, keep)
        return ShadowRecord(
            model_version=model.version,
            chosen_action=pool[greedy].action.id,
            candidates=tuple(
                LoggedCandidate(s.action.id, s.propensity, s.expected_value) for s in ranked
            ),
        )

    @staticmethod
    def _arbitrate(
        version: CatalogVersion, scored: _Scored, keep: list[int]
    ) -> tuple[list[ScoredAction], list[ScoredAction], int]:
        """Rank by `rank_key` (must-do tier, then expected value above the threshold); build the
        exploration pool.

        Returns the ranked list (no_action included), the pool exploration draws from and
        the index in the pool of the arbitration winner.
        """
        threshold = version.catalog.policy.no_action_threshold
        propensities, expected = scored.propensities.tolist(), scored.expected.tolist()
        options = [ScoredAction(scored.actions[i], propensities[i], expected[i]) for i in keep]
        nothing = ScoredAction(version.catalog.no_action, None, threshold)

        def key(s: ScoredAction) -> tuple[int, int, float]:
            if s is nothing:
                return NO_ACTION_KEY
            return rank_key(s.expected_value, s.action.priority, threshold)

        ranked = sorted([*options, nothing], key=key, reverse=True)
        winner = ranked[0]
        if winner is nothing:
            pool = [nothing, *(s for s in options if s.action.priority == 0)]
        else:
            pool = [
                s
                for s in ranked
                if s is not nothing and s.action.priority == winner.action.priority
            ]
        return ranked, pool, pool.index(winner)

    @staticmethod
    def _explain(
        version: CatalogVersion, chosen: ScoredAction, explored: bool, eligible: int
    ) -> str:
        threshold = version.catalog.policy.no_action_threshold
        if chosen.propensity is None:
            return (
                f"No action: none of the {eligible} eligible actions has an expected value "
                f"above {threshold:g} EUR."
            )
        action = chosen.action
        lever = f" x lever {action.lever:g}" if action.lever != 1 else ""
        text = (
            f"Expected value {chosen.expected_value:.2f} EUR = {chosen.propensity:.1%} chance "
            f"of acceptance x {action.value:g} EUR{lever} - {action.cost:g} EUR cost"
        )
        if explored:
            return text + "; shown to explore (not the top-ranked action)."
        if action.priority > 0:
            return text + f"; must-do action (priority {action.priority}), ranked above all others."
        return text + f"; the best of {eligible} eligible actions."
