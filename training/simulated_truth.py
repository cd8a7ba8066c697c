"""The simulator's truth as evaluation inputs: true expected values and the logging policy."""

from __future__ import annotations

import numpy as np
import pandas as pd

from service.catalog import Catalog
from training.evaluation import TruthFn
from training.policies import Block, Policy
from training.response import accept_probability, logging_probabilities


def true_expected_values(latent: pd.DataFrame, catalog: Catalog) -> TruthFn:
    """(m, c + 1) true expected values of a block's candidates; no_action is worth 0."""

    def truth(block: Block) -> np.ndarray:
        m, c = block.shape
        states = block.frame.merge(latent, on="customer_id", how="left")
        repeated = states.loc[states.index.repeat(c)].reset_index(drop=True)
        ids = np.array([a.id for a in block.actions] * m)
        p = accept_probability(repeated, ids, np.full(m * c, block.touchpoint.value), catalog)
        ev = p.reshape(m, c) * block.values * block.levers - block.costs
        return np.column_stack([ev, np.zeros(m)])

    return truth


def logging_policy(exploration: float) -> Policy:
    """The legacy rules with epsilon-uniform exploration that produced the simulated log."""

    def policy(block: Block) -> np.ndarray:
        m, c = block.shape
        probabilities = np.zeros((m, c + 1))
        probabilities[:, :c] = logging_probabilities(block.frame, block.actions, exploration)
        return probabilities

    return policy
