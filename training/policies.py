"""Policies over the holdout's candidate grid: every decision x every action allowed there.

A policy gives, per decision, a probability over the candidates plus `no_action` (last
column). Learned policies pick the highest expected value; baselines need no model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from service.arbitration import expected_values, winners
from service.catalog import Action, Catalog
from service.features import FeatureSpec, customer_matrix_from_frame, featurize
from service.rules import eligible_rows
from service.vocabulary import Touchpoint

Scorer = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Block:
    """The decisions of one touchpoint and the candidate actions there."""

    touchpoint: Touchpoint
    rows: np.ndarray  # positions in the evaluated frame
    frame: pd.DataFrame  # those decisions, with their features
    actions: list[Action]
    matrix: np.ndarray  # (m * c, f): decision-major, candidate-minor
    values: np.ndarray
    costs: np.ndarray
    levers: np.ndarray
    priorities: np.ndarray
    eligible: np.ndarray  # (m, c): the action passes the catalog's rules (consent taken as given)
    logged: np.ndarray  # column of the logged action; c = no_action; -1 = not a candidate

    @property
    def shape(self) -> tuple[int, int]:
        """(decisions, candidates)."""
        return len(self.rows), len(self.actions)

    def expected(self, propensities: np.ndarray) -> np.ndarray:
        """(m, c + 1) expected values in EUR; the no_action column is 0."""
        m, c = self.shape
        ev = expected_values(propensities.reshape(m, c) * self.levers, self.values, self.costs)
        return np.column_stack([ev, np.zeros(m)])


Policy = Callable[[Block], np.ndarray]


def memoised(scorer: Scorer) -> Scorer:
    """`scorer`, computed once per matrix: several reports score the same candidate grid."""
    scored: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def score(matrix: np.ndarray) -> np.ndarray:
        kept = scored.get(id(matrix))
        if kept is None or kept[0] is not matrix:  # the matrix is kept, so its id stays unique
            kept = scored[id(matrix)] = (matrix, scorer(matrix))
        return kept[1]

    return score


def eligibility(frame: pd.DataFrame, actions: list[Action], today: date) -> np.ndarray:
    """(m, c) mask of the actions the catalog's rules allow for each decision.

    Consent is taken as given: logs rarely carry it, and it only removes actions.
    """
    return np.column_stack([eligible_rows(a, frame, today) for a in actions])


def candidate_grid(
    frame: pd.DataFrame, spec: FeatureSpec, catalog: Catalog, today: date
) -> list[Block]:
    """Expand each decision of `frame` to all catalog candidates at its touchpoint."""
    blocks = []
    for touchpoint in Touchpoint:
        rows = np.flatnonzero(frame["touchpoint"].to_numpy() == touchpoint.value)
        actions = catalog.candidates(touchpoint)
        if not len(rows) or not actions:
            continue
        part = frame.iloc[rows].reset_index(drop=True)
        m, c = len(rows), len(actions)
        matrix = featurize(
            spec,
            np.repeat(customer_matrix_from_frame(spec, part), c, axis=0),
            [a.id for a in actions] * m,
            [a.type.value for a in actions] * m,
            [touchpoint.value] * (m * c),
        )
        column = {a.id: j for j, a in enumerate(actions)} | {catalog.no_action.id: c}
        logged = np.array([column.get(a, -1) for a in part["action_id"]])
        blocks.append(
            Block(
                touchpoint,
                rows,
                part,
                actions,
                matrix,
                np.array([a.value for a in actions]),
                np.array([a.cost for a in actions]),
                np.array([a.lever for a in actions]),
                np.array([a.priority for a in actions]),
                eligibility(part, actions, today),
                logged,
            )
        )
    return blocks


def _one_hot(choice: np.ndarray, width: int) -> np.ndarray:
    probabilities = np.zeros((len(choice), width))
    probabilities[np.arange(len(choice)), choice] = 1.0
    return probabilities


def greedy(scorer: Scorer, threshold: float) -> Policy:
    """What the service does: the catalog's rules, then arbitration on predicted value."""

    def policy(block: Block) -> np.ndarray:
        c = block.shape[1]
        ev = block.expected(scorer(block.matrix))[:, :c]
        return _one_hot(winners(ev, block.priorities, block.eligible, threshold), c + 1)

    return policy


def rules_only(threshold: float) -> Policy:
    """No model: the catalog's rules, then the highest value x lever - cost."""

    def policy(block: Block) -> np.ndarray:
        m, c = block.shape
        worth = np.tile(block.values * block.levers - block.costs, (m, 1))
        return _one_hot(winners(worth, block.priorities, block.eligible, threshold), c + 1)

    return policy


def most_popular(train: pd.DataFrame) -> Policy:
    """No model: among actions the rules allow, the one accepted most often in training."""
    rates = train.groupby(["touchpoint", "action_id"])["outcome"].mean()

    def policy(block: Block) -> np.ndarray:
        m, c = block.shape
        known = rates.get(block.touchpoint.value)
        scores = np.array(
            [known.get(a.id, 0.0) if known is not None else 0.0 for a in block.actions]
        )
        choice = winners(np.tile(scores, (m, 1)), np.zeros(c), block.eligible, -1.0)
        return _one_hot(choice, c + 1)

    return policy


def uniform_random(block: Block) -> np.ndarray:
    """Each candidate with equal probability; never no_action."""
    m, c = block.shape
    probabilities = np.full((m, c + 1), 1.0 / c)
    probabilities[:, c] = 0.0
    return probabilities
