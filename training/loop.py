"""The closed loop on the simulator: serve, let customers respond, feed back, retrain, promote.

Each round starts the real service, sends decision requests for simulated customers at
their touchpoints, draws each customer's response from the hidden response model, posts
it to /v1/feedback, then retrains on everything logged so far and runs the promotion gates.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from service.catalog import Catalog
from training.registry import promote
from training.response import accept_probability
from training.serving import running_service
from training.settings import TrainingSettings
from training.simulator import sample_touchpoints
from training.train import train_and_register

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoundReport:
    """What one round served and what it learned."""

    round: int
    served_version: str
    decisions: int
    true_value: float  # EUR per decision, from the hidden response model
    acceptance: float
    trained_version: str
    promoted: bool


def current_states(settings: TrainingSettings) -> pd.DataFrame:
    """Each customer's latest features (as materialised online) and latent traits."""
    data = settings.feature_repo / "data"
    activity = pd.read_parquet(data / "customer_activity.parquet")
    latest = activity.sort_values("event_timestamp").groupby("customer_id").tail(1)
    profile = pd.read_parquet(data / "customer_profile.parquet").drop(columns="event_timestamp")
    latent = pd.read_parquet(settings.data_dir / "ground_truth_latent.parquet")
    frame = latest.drop(columns="event_timestamp").merge(profile, on="customer_id")
    return frame.merge(latent, on="customer_id").set_index("customer_id")


def serve_round(
    url: str, states: pd.DataFrame, catalog: Catalog, decisions: int, rng: np.random.Generator
) -> tuple[float, float]:
    """Send decisions and the customers' responses; return true value and acceptance rates."""
    customers = rng.choice(states.index.to_numpy(), size=decisions)
    touchpoints = sample_touchpoints(
        states.loc[customers, "digital_logins_30d"].to_numpy(dtype=np.float64), rng
    )
    values, accepted = [], []
    with httpx.Client(base_url=url, timeout=30) as client:
        for customer, touchpoint in zip(customers, touchpoints, strict=True):
            response = client.post(
                "/v1/decisions",
                json={
                    "customer_id": str(customer),
                    "touchpoint": str(touchpoint),
                    "reasons": False,
                },
            )
            response.raise_for_status()
            body = response.json()
            action_id = body["action"]["action_id"]
            if action_id == catalog.no_action.id:
                values.append(0.0)
                accepted.append(False)
                continue
            action = catalog.by_id(action_id)
            state = states.loc[[customer]].reset_index()
            p = float(
                accept_probability(state, np.array([action_id]), np.array([touchpoint]), catalog)[0]
            )
            values.append(p * action.value * action.lever - action.cost)
            took = bool(rng.random() < p)
            accepted.append(took)
            for outcome in ("impression", "accept" if took else "reject"):
                client.post(
                    "/v1/feedback",
                    json={
                        "decision_id": body["decision_id"],
                        "action_id": action_id,
                        "outcome": outcome,
                    },
                ).raise_for_status()
    return float(np.mean(values)), float(np.mean(accepted))


def run_loop(
    settings: TrainingSettings, catalog: Catalog, rounds: int, decisions: int
) -> list[RoundReport]:
    """Run the loop and report the true policy value of every round."""
    states = current_states(settings)
    rng = np.random.default_rng(settings.seed + 1000)
    env = dict(os.environ)
    reports = []
    for number in range(1, rounds + 1):
        log_path = settings.data_dir / "loop" / f"service-round-{number}.log"
        with running_service(env, Path.cwd(), log_path) as url:
            served = httpx.get(f"{url}/health/ready").json()["models"]["champion"]["version"]
            log.info("round %d: serving version %s, %d decisions", number, served, decisions)
            value, acceptance = serve_round(url, states, catalog, decisions, rng)
        log.info(
            "round %d: true value %.2f EUR per decision, acceptance %.3f", number, value, acceptance
        )
        result = train_and_register(settings, catalog)
        gates = promote(settings)
        reports.append(
            RoundReport(
                number, served, decisions, value, acceptance, result.model_version, gates.passed
            )
        )
        log.info(
            "round %d: trained version %s (%s), %s",
            number,
            result.model_version,
            result.family,
            "promoted" if gates.passed else "not promoted: " + "; ".join(gates.refusals),
        )
    return reports
