"""Readable reasons: LightGBM feature contributions turned into short sentences."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.model import LoadedModel

FLAG_SUFFIX = "(1/0)"


@dataclass(frozen=True)
class Reason:
    """One customer fact that pushed the prediction, and by how much (log-odds)."""

    feature: str
    value: float | None
    contribution: float
    text: str


def describe_value(description: str, value: Any) -> str:
    """'Holds a mortgage (1/0)' with 0 -> 'Holds a mortgage: no'; otherwise 'Age ...: 34'."""
    if description.endswith(FLAG_SUFFIX):
        flag = "yes" if value == 1 else "no"
        return f"{description.removesuffix(FLAG_SUFFIX).strip()}: {flag}"
    if isinstance(value, float) and not value.is_integer():
        return f"{description}: {value:,.2f}"
    return f"{description}: {int(value) if isinstance(value, float) else value}"


def top_reasons(
    model: LoadedModel,
    row: np.ndarray,
    values: Mapping[str, Any],
    descriptions: Mapping[str, str],
    limit: int = 3,
) -> list[Reason]:
    """The customer features that raised this row's predicted acceptance the most."""
    contributions = model.contributions(row)[0]
    names = model.spec.customer_features
    order = np.argsort(contributions[: len(names)])[::-1]
    reasons = []
    for j in order[:limit]:
        contribution = float(contributions[j])
        if contribution <= 0:
            break
        name = names[j]
        value = values.get(name)
        description = descriptions.get(name) or name
        reasons.append(
            Reason(
                feature=name,
                value=None if value is None else float(value),
                contribution=round(contribution, 4),
                text=f"{describe_value(description, value)} (raises the chance of acceptance)",
            )
        )
    return reasons
