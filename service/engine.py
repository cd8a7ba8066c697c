"""The decision engine: candidates from the catalog, scored by the model, arbitrated by value."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from service.arbitration import best_index, expected_values
from service.catalog import Action, Catalog
from service.features import customer_vector, featurize
from service.model import LoadedModel
from service.vocabulary import Touchpoint

UNKNOWN_CUSTOMER_NOTICE = "customer unknown to the feature store: the answer is not personalised"


class FeatureReader(Protocol):
    """Anything that returns one customer's online features (None when unknown)."""

    def read(self, customer_id: str) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class ScoredAction:
    """A candidate with its predicted acceptance and expected value (EUR)."""

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
    personalised: bool
    chosen: ScoredAction
    ranked: list[ScoredAction]
    notices: list[str]


@dataclass(frozen=True)
class _Candidates:
    actions: list[Action]
    ids: list[str]
    types: list[str]
    values: np.ndarray
    costs: np.ndarray


class DecisionEngine:
    """Turns (customer, touchpoint) into a ranked, value-weighted recommendation."""

    def __init__(
        self, catalog: Catalog, model: LoadedModel, features: FeatureReader, threshold: float = 0.0
    ) -> None:
        self.catalog = catalog
        self.model = model
        self.features = features
        self.threshold = threshold
        self._by_touchpoint = {tp: self._candidates(tp) for tp in Touchpoint}

    def _candidates(self, touchpoint: Touchpoint) -> _Candidates:
        actions = self.catalog.candidates(touchpoint)
        return _Candidates(
            actions=actions,
            ids=[a.id for a in actions],
            types=[a.type.value for a in actions],
            values=np.array([a.value for a in actions], dtype=np.float64),
            costs=np.array([a.cost for a in actions], dtype=np.float64),
        )

    def decide(self, customer_id: str, touchpoint: Touchpoint) -> Decision:
        """Score every candidate at the touchpoint and pick the one of highest expected value."""
        values = self.features.read(customer_id)
        notices = [] if values is not None else [UNKNOWN_CUSTOMER_NOTICE]
        candidates = self._by_touchpoint[touchpoint]
        matrix = featurize(
            self.model.spec,
            customer_vector(self.model.spec, values),
            candidates.ids,
            candidates.types,
            [touchpoint.value] * len(candidates.ids),
        )
        propensities = self.model.predict(matrix)
        expected = expected_values(propensities, candidates.values, candidates.costs)
        scored = [
            ScoredAction(action, float(p), float(ev))
            for action, p, ev in zip(candidates.actions, propensities, expected, strict=True)
        ]
        scored.append(ScoredAction(self.catalog.no_action, None, self.threshold))
        winner = best_index(expected, self.threshold)
        ranked = sorted(scored, key=lambda s: s.expected_value, reverse=True)
        if winner is None:  # nothing beats the threshold: 'no action' goes first
            ranked.remove(scored[-1])
            ranked.insert(0, scored[-1])
        return Decision(
            decision_id=str(uuid.uuid4()),
            customer_id=customer_id,
            touchpoint=touchpoint,
            model=self.model,
            personalised=values is not None,
            chosen=ranked[0],
            ranked=ranked,
            notices=notices,
        )
