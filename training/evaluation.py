"""Holdout evaluation: prediction quality, ranking on logs, and policy values.

Every policy is valued with IPS, SNIPS and doubly robust estimates (each with its
effective sample size and a bootstrap interval). On simulated data the true value of each
policy, the oracle, the regret and each estimator's error are added.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from service.catalog import Catalog
from training.metrics import bootstrap_interval
from training.ope import doubly_robust, doubly_robust_terms, ips, snips
from training.policies import Block, Policy, Scorer

TruthFn = Callable[[Block], np.ndarray]  # (m, c + 1) true expected values in EUR
AGE_BANDS = (18, 30, 45, 60, 75, 200)


def logged_rewards(frame: pd.DataFrame, catalog: Catalog) -> np.ndarray:
    """Reward in EUR of each logged decision: value if accepted, minus the cost of showing."""
    actions = [catalog.find(a) for a in frame["action_id"]]
    value = np.array([a.value if a else 0.0 for a in actions])
    cost = np.array([a.cost if a else 0.0 for a in actions])
    return np.asarray(frame["outcome"].to_numpy(dtype=np.float64) * value - cost)


def age_band_label(band: pd.Interval) -> str:
    """'30-44', or '75-and-over' for the open-ended last band (MLflow allows no '+')."""
    if band.right >= AGE_BANDS[-1]:
        return f"{int(band.left)}-and-over"
    return f"{int(band.left)}-{int(band.right) - 1}"


def segments(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Row masks of the reporting slices: touchpoint, and age band when age is known."""
    masks = {
        f"touchpoint_{tp}": (frame["touchpoint"] == tp).to_numpy()
        for tp in sorted(frame["touchpoint"].unique())
    }
    if "age" in frame.columns:
        bands = pd.cut(frame["age"], AGE_BANDS, right=False)
        for band in bands.cat.categories:
            masks[f"age_{age_band_label(band)}"] = (bands == band).to_numpy()
    return masks


def ranking_on_logs(blocks: list[Block], scorer: Scorer, k: int = 5) -> dict[str, float]:
    """Where the accepted action ranks among the candidates by predicted acceptance.

    hit_at_1: share of accepted decisions whose action the model ranks first;
    ndcg_at_k: mean 1 / log2(rank + 1) over accepted decisions (0 beyond k).
    """
    hits, gains = [], []
    for block in blocks:
        m, c = block.shape
        scores = scorer(block.matrix).reshape(m, c)
        accepted = (
            (block.frame["outcome"].to_numpy() == 1) & (block.logged >= 0) & (block.logged < c)
        )
        for i in np.flatnonzero(accepted):
            rank = 1 + int((scores[i] > scores[i, block.logged[i]]).sum())
            hits.append(rank == 1)
            gains.append(1 / np.log2(rank + 1) if rank <= k else 0.0)
    return {
        "hit_at_1": float(np.mean(hits)) if hits else float("nan"),
        f"ndcg_at_{k}": float(np.mean(gains)) if gains else float("nan"),
    }


def evaluate_policies(
    frame: pd.DataFrame,
    blocks: list[Block],
    catalog: Catalog,
    policies: Mapping[str, Policy],
    reward_model: Scorer,
    rng: np.random.Generator,
    truth: TruthFn | None = None,
    resamples: int = 200,
) -> dict[str, float]:
    """Estimated (and, with `truth`, true) value per decision of every policy, in EUR."""
    n = len(frame)
    reward = logged_rewards(frame, catalog)
    propensity = frame["propensity"].to_numpy(dtype=np.float64)
    report: dict[str, float] = {"logging/observed": float(reward.mean())}
    report["logging/observed_lo"], report["logging/observed_hi"] = bootstrap_interval(
        _mean, (reward,), rng, resamples
    )
    q = {id(b): b.expected(reward_model(b.matrix)) for b in blocks}
    true_ev = {id(b): truth(b) for b in blocks} if truth else {}
    all_policies = dict(policies)
    if truth:
        all_policies["oracle"] = lambda b: _argmax_policy(true_ev[id(b)])
    tp_masks = {
        name: mask for name, mask in segments(frame).items() if name.startswith("touchpoint_")
    }
    for name, policy in all_policies.items():
        target = np.zeros(n)
        q_target = np.zeros(n)
        q_logged = np.zeros(n)
        true_value = np.zeros(n)
        for block in blocks:
            probabilities = policy(block)
            at = np.arange(len(block.rows))
            known = block.logged >= 0
            column = np.where(known, block.logged, 0)
            target[block.rows] = np.where(known, probabilities[at, column], 0.0)
            q_target[block.rows] = (probabilities * q[id(block)]).sum(axis=1)
            q_logged[block.rows] = np.where(known, q[id(block)][at, column], 0.0)
            if truth:
                true_value[block.rows] = (probabilities * true_ev[id(block)]).sum(axis=1)
        for estimator, estimate in (
            ("ips", ips(reward, propensity, target)),
            ("snips", snips(reward, propensity, target)),
            ("dr", doubly_robust(reward, propensity, target, q_target, q_logged)),
        ):
            report[f"{name}/{estimator}"] = estimate.value
            report[f"{name}/{estimator}_ess"] = estimate.effective_sample_size
        terms = doubly_robust_terms(reward, propensity, target, q_target, q_logged)
        report[f"{name}/dr_lo"], report[f"{name}/dr_hi"] = bootstrap_interval(
            _mean, (terms,), rng, resamples
        )
        for slice_name, mask in tp_masks.items():
            report[f"{name}/{slice_name}/dr"] = doubly_robust(
                reward[mask], propensity[mask], target[mask], q_target[mask], q_logged[mask]
            ).value
        if truth:
            report[f"{name}/true_value"] = float(true_value.mean())
            for estimator in ("ips", "snips", "dr"):
                report[f"{name}/{estimator}_error"] = abs(
                    report[f"{name}/{estimator}"] - report[f"{name}/true_value"]
                )
    if truth:
        for name in policies:
            report[f"{name}/regret"] = report["oracle/true_value"] - report[f"{name}/true_value"]
    return report


def _mean(values: np.ndarray) -> float:
    return float(values.mean())


def _argmax_policy(ev: np.ndarray) -> np.ndarray:
    """Best true expected value; no_action (last column, value 0) when nothing is positive."""
    choice = ev.argmax(axis=1)
    probabilities = np.zeros_like(ev)
    probabilities[np.arange(len(ev)), choice] = 1.0
    return probabilities
