"""Tables for people: the figures of a training run and of a decision log, as DataFrames."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from training.evaluation import AGE_BANDS

POLICY_ORDER = ("binary", "ranker", "champion", "rules", "popular", "random", "logging", "oracle")
POLICY_COLUMNS = ("dr", "dr_lo", "dr_hi", "snips", "ips", "dr_ess", "true_value", "dr_error")
MODEL_COLUMNS = (
    "auc",
    "auc_lo",
    "auc_hi",
    "log_loss",
    "brier",
    "calibration_error",
    "hit_at_1",
    "ndcg_at_5",
)


def policy_table(metrics: Mapping[str, float]) -> pd.DataFrame:
    """Value per decision (EUR) of every evaluated policy, one row each."""
    rows = {
        name: {column: metrics.get(f"policy/{name}/{column}") for column in POLICY_COLUMNS}
        for name in POLICY_ORDER
        if f"policy/{name}/dr" in metrics
    }
    return pd.DataFrame.from_dict(rows, orient="index").dropna(axis=1, how="all")


def model_table(metrics: Mapping[str, float]) -> pd.DataFrame:
    """Holdout prediction metrics of both model families, one row each."""
    rows = {
        family: {column: metrics.get(f"model_{family}/{column}") for column in MODEL_COLUMNS}
        for family in ("binary", "ranker")
        if f"model_{family}/auc" in metrics
    }
    return pd.DataFrame.from_dict(rows, orient="index")


def slice_table(metrics: Mapping[str, float], family: str) -> pd.DataFrame:
    """A model family's metrics per slice (touchpoint, age band)."""
    prefix = f"model_{family}/"
    rows: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        if key.startswith(prefix) and key.count("/") == 2:
            slice_name, metric = key.removeprefix(prefix).split("/")
            rows.setdefault(slice_name, {})[metric] = value
    return pd.DataFrame.from_dict(rows, orient="index").sort_index()


def acceptance_table(decisions: pd.DataFrame) -> pd.DataFrame:
    """Acceptance rate per action (rows) and touchpoint (columns) in a decision log."""
    return decisions.pivot_table(
        index="action_id", columns="touchpoint", values="outcome", aggfunc="mean"
    ).round(3)


def volume_table(decisions: pd.DataFrame, by: str = "touchpoint") -> pd.DataFrame:
    """Decisions, acceptances and acceptance rate per group (default: touchpoint)."""
    frame = decisions
    if by == "age_band":
        frame = decisions.assign(age_band=pd.cut(decisions["age"], AGE_BANDS, right=False))
    grouped = frame.groupby(by, observed=True)["outcome"]
    return pd.DataFrame(
        {
            "decisions": grouped.size(),
            "accepted": grouped.sum(),
            "acceptance": grouped.mean().round(3),
        }
    )
