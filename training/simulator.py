"""A retail bank with a known truth: customers, weekly activity, consent and decision history.

Deterministic by seed and `as_of`. Customer features are written where Feast reads them;
the latent traits (not visible to the model) and the decision log go to the data folder.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from service.catalog import Catalog
from service.vocabulary import Touchpoint
from training.response import LATENT_COLUMNS, accept_probability, logging_probabilities

log = logging.getLogger(__name__)

WEEK = timedelta(days=7)
PRODUCT_COLUMNS = (
    "has_credit_card",
    "has_personal_loan",
    "has_mortgage",
    "has_savings",
    "has_investments",
    "has_insurance",
    "is_premium",
)
CONSENT_COLUMNS = (
    *(f"consent_marketing_{tp.value}" for tp in Touchpoint),
    "consent_profiling",
)


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate. The same config always gives the same world."""

    n_customers: int = 20_000
    n_decisions: int = 100_000
    history_weeks: int = 13
    as_of: datetime = datetime(2026, 11, 1, tzinfo=UTC)
    seed: int = 7
    exploration: float = 0.3

    @property
    def start(self) -> datetime:
        """Time of the first activity snapshot."""
        return self.as_of - self.history_weeks * WEEK


@dataclass(frozen=True)
class SimulatedWorld:
    """Everything the simulator produced; `latent` and the response model are the hidden truth."""

    profile: pd.DataFrame
    activity: pd.DataFrame
    consent: pd.DataFrame
    latent: pd.DataFrame
    decisions: pd.DataFrame


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)


def customer_ids(n: int) -> np.ndarray:
    """The customer ID format of the simulated bank."""
    return np.array([f"C{i:07d}" for i in range(n)])


def _profiles(cfg: SimulationConfig, rng: np.random.Generator) -> pd.DataFrame:
    n = cfg.n_customers
    age = np.clip(rng.normal(45, 15, n), 18, 90).astype(np.int64)
    new_customer = rng.random(n) < 0.08
    tenure = np.where(
        new_customer, rng.integers(0, 6, n), np.clip(rng.exponential(70, n), 6, 600)
    ).astype(np.int64)
    income = np.clip(rng.lognormal(np.log(3000), 0.5, n), 500, 30_000).astype(np.float32)
    income_k = income / 1000.0
    holdings = {
        "has_credit_card": _sigmoid(-0.3 + 0.3 * (income_k - 3)),
        "has_personal_loan": np.full(n, 0.15),
        "has_mortgage": _sigmoid(-1.5 + 0.9 * ((age >= 30) & (age <= 60)) + 0.2 * (income_k - 3)),
        "has_savings": np.full(n, 0.45),
        "has_investments": _sigmoid(-2.0 + 0.03 * (age - 45) + 0.3 * (income_k - 3)),
        "has_insurance": np.full(n, 0.35),
        "is_premium": _sigmoid(-3.0 + 0.6 * (income_k - 3)),
    }
    frame = pd.DataFrame(
        {
            "customer_id": customer_ids(n),
            "age": age,
            "tenure_months": tenure,
            "monthly_income": income,
        }
    )
    for name, p in holdings.items():
        frame[name] = (rng.random(n) < p).astype(np.int64)
    frame["num_products"] = 1 + frame[list(PRODUCT_COLUMNS)].sum(axis=1).astype(np.int64)
    frame["event_timestamp"] = pd.Timestamp(cfg.start - timedelta(days=1))
    return frame


def _activity(
    cfg: SimulationConfig, profile: pd.DataFrame, rng: np.random.Generator
) -> pd.DataFrame:
    n, weeks = cfg.n_customers, cfg.history_weeks + 1
    age = profile["age"].to_numpy()
    income = profile["monthly_income"].to_numpy(dtype=np.float64)
    base_balance = rng.lognormal(np.log(income * 1.5), 0.9)
    digital = _sigmoid(2.0 - 0.06 * (age - 40) + rng.normal(0, 1, n))
    app_user = rng.random(n) < digital
    travel_rate = rng.exponential(1.5, n) * income / 3000.0
    salary_inflow = (rng.random(n) < 0.7).astype(np.int64)
    drift = np.where(rng.random(n) < 0.12, rng.normal(-0.5, 0.15, n), rng.normal(0.02, 0.1, n))
    complaints = (rng.random(n) < 0.05).astype(np.int64)

    frames = []
    for week in range(weeks):
        progress = week / cfg.history_weeks
        balance = base_balance * np.exp(drift * progress + rng.normal(0, 0.05, n))
        if week > 0:
            resolved = rng.binomial(complaints, 0.35)
            new = rng.random(n) < 0.02 + 0.04 * (drift < -0.2)
            complaints = np.clip(complaints - resolved + new, 0, 3)
        frames.append(
            pd.DataFrame(
                {
                    "customer_id": profile["customer_id"].to_numpy(),
                    "event_timestamp": pd.Timestamp(cfg.start + week * WEEK),
                    "balance": balance.astype(np.float32),
                    "balance_trend_90d": (balance / base_balance - 1.0).astype(np.float32),
                    "monthly_card_spend": (income * 0.3 * rng.gamma(2.0, 0.5, n)).astype(
                        np.float32
                    ),
                    "digital_logins_30d": rng.poisson(30 * digital),
                    "app_sessions_30d": rng.poisson(25 * digital) * app_user,
                    "branch_visits_90d": rng.poisson(3 * (1 - digital)),
                    "travel_transactions_90d": rng.poisson(travel_rate * 3),
                    "salary_inflow": salary_inflow,
                    "open_complaints": complaints.astype(np.int64),
                }
            )
        )
    activity = pd.concat(frames, ignore_index=True)
    for column in (
        "digital_logins_30d",
        "app_sessions_30d",
        "branch_visits_90d",
        "travel_transactions_90d",
    ):
        activity[column] = activity[column].astype(np.int64)
    return activity


def _consent(cfg: SimulationConfig, rng: np.random.Generator) -> pd.DataFrame:
    n = cfg.n_customers
    opted_out = rng.random(n) < 0.10
    frame = pd.DataFrame({"customer_id": customer_ids(n)})
    for column in CONSENT_COLUMNS:
        rate = 0.9 if column == "consent_profiling" else 0.85
        given = rng.random(n) < rate
        if column != "consent_profiling":
            given &= ~opted_out
        frame[column] = given.astype(np.int64)
    frame["event_timestamp"] = pd.Timestamp(cfg.start - timedelta(days=1))
    return frame


def states_at(
    world_profile: pd.DataFrame,
    activity: pd.DataFrame,
    latent: pd.DataFrame,
    customers: np.ndarray,
    times: pd.Series,
) -> pd.DataFrame:
    """Each customer's true state (features and latent traits) as it was at each time."""
    query = pd.DataFrame(
        {
            "customer_id": customers,
            "event_timestamp": pd.to_datetime(times, utc=True).astype("datetime64[ns, UTC]"),
            "_row": np.arange(len(customers)),
        }
    )
    activity = activity.assign(
        event_timestamp=activity["event_timestamp"].astype("datetime64[ns, UTC]")
    )
    joined = pd.merge_asof(
        query.sort_values("event_timestamp"),
        activity.sort_values("event_timestamp"),
        on="event_timestamp",
        by="customer_id",
        direction="backward",
    )
    joined = joined.merge(world_profile.drop(columns="event_timestamp"), on="customer_id")
    joined = joined.merge(latent, on="customer_id")
    return joined.sort_values("_row").drop(columns="_row").reset_index(drop=True)


def sample_touchpoints(digital_logins: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Where each customer shows up: digital customers online, others in person."""
    digital = np.clip(digital_logins / 30.0, 0.0, 1.0)
    weights = np.column_stack(
        [
            0.35 * digital + 0.05,
            0.35 * digital + 0.05,
            0.3 * (1 - digital) + 0.05,
            np.full(len(digital), 0.15),
            0.2 * (1 - digital) + 0.05,
        ]
    )
    weights /= weights.sum(axis=1, keepdims=True)
    cumulative = weights.cumsum(axis=1)
    index = (rng.random(len(digital))[:, None] > cumulative).sum(axis=1)
    names = np.array([tp.value for tp in Touchpoint])
    return np.asarray(names[np.minimum(index, len(names) - 1)])


def _decisions(
    cfg: SimulationConfig,
    catalog: Catalog,
    profile: pd.DataFrame,
    activity: pd.DataFrame,
    latent: pd.DataFrame,
    rng: np.random.Generator,
) -> pd.DataFrame:
    n = cfg.n_decisions
    customers = rng.choice(profile["customer_id"].to_numpy(), size=n)
    span = (cfg.as_of - cfg.start).total_seconds()
    offsets = np.sort(rng.uniform(0, span, n))
    times = pd.Series(pd.Timestamp(cfg.start) + pd.to_timedelta(offsets, unit="s")).dt.floor("s")
    states = states_at(profile, activity, latent, customers, times)
    touchpoints = sample_touchpoints(states["digital_logins_30d"].to_numpy(dtype=np.float64), rng)

    chosen = np.empty(n, dtype=object)
    propensity = np.empty(n)
    for tp in Touchpoint:
        rows = np.flatnonzero(touchpoints == tp.value)
        candidates = catalog.candidates(tp)
        probabilities = logging_probabilities(states.iloc[rows], candidates, cfg.exploration)
        draw = (rng.random(len(rows))[:, None] > probabilities.cumsum(axis=1)).sum(axis=1)
        draw = np.minimum(draw, len(candidates) - 1)
        chosen[rows] = np.array([a.id for a in candidates])[draw]
        propensity[rows] = probabilities[np.arange(len(rows)), draw]

    p_accept = accept_probability(states, chosen, touchpoints, catalog)
    accepted = (rng.random(n) < p_accept).astype(np.int64)
    values = np.array([catalog.by_id(a).value for a in chosen])
    id_rng = np.random.default_rng(cfg.seed + 1)
    return pd.DataFrame(
        {
            "decision_id": [str(uuid.UUID(bytes=id_rng.bytes(16), version=4)) for _ in range(n)],
            "customer_id": customers,
            "event_timestamp": times.to_numpy(),
            "touchpoint": touchpoints,
            "action_id": chosen.astype(str),
            "propensity": propensity,
            "outcome": accepted,
            "reward": accepted * values,
        }
    )


def simulate(cfg: SimulationConfig, catalog: Catalog) -> SimulatedWorld:
    """Generate a whole world from the config."""
    rng = np.random.default_rng(cfg.seed)
    profile = _profiles(cfg, rng)
    activity = _activity(cfg, profile, rng)
    consent = _consent(cfg, rng)
    latent = pd.DataFrame(
        {
            "customer_id": profile["customer_id"],
            LATENT_COLUMNS[0]: rng.normal(0, 1, cfg.n_customers),
        }
    )
    decisions = _decisions(cfg, catalog, profile, activity, latent, rng)
    return SimulatedWorld(profile, activity, consent, latent, decisions)


def write_world(world: SimulatedWorld, feature_data_dir: Path, data_dir: Path) -> None:
    """Write features where Feast reads them; the decision log and the hidden truth to data_dir."""
    feature_data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    world.profile.to_parquet(feature_data_dir / "customer_profile.parquet", index=False)
    world.activity.to_parquet(feature_data_dir / "customer_activity.parquet", index=False)
    world.consent.to_parquet(feature_data_dir / "customer_consent.parquet", index=False)
    world.decisions.to_parquet(data_dir / "decisions.parquet", index=False)
    world.latent.to_parquet(data_dir / "ground_truth_latent.parquet", index=False)
    log.info(
        "wrote %d customers, %d activity snapshots, %d decisions",
        len(world.profile),
        len(world.activity),
        len(world.decisions),
    )
