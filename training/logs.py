"""Decision logs for training: the simulator's history, the service's log, or imported files.

Every source becomes one canonical frame, one row per logged decision:
decision_id, customer_id, event_timestamp (UTC), touchpoint, action_id, propensity in (0, 1],
outcome (1 accepted, else 0), plus, for imported logs, numeric context-feature columns.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from service.catalog import NO_ACTION_ID
from service.runtime import open_decision_log
from service.settings import ServiceSettings
from service.vocabulary import ActionType, Touchpoint

CANONICAL = (
    "decision_id",
    "customer_id",
    "event_timestamp",
    "touchpoint",
    "action_id",
    "propensity",
    "outcome",
)
NOT_FEATURES = frozenset({*CANONICAL, "reward", "position"})
IMPORT_RESERVED = {
    "decision_id",
    "customer_id",
    "timestamp",
    "touchpoint",
    "action_id",
    "position",
    "outcome",
    "reward",
    "propensity",
}


def context_features(frame: pd.DataFrame) -> list[str]:
    """Columns of a log that are context features (imported logs carry them inline)."""
    return [c for c in frame.columns if c not in NOT_FEATURES]


class LogFormatError(ValueError):
    """An imported log breaks the format; the message names the row and the column."""


def read_training_log(path: Path) -> pd.DataFrame:
    """A decision history in the canonical columns (plus inline context features, if any)."""
    if not path.exists():
        raise FileNotFoundError(
            f"no decision log at {path}: run `nba simulate` or `nba import-logs` first"
        )
    frame = pd.read_parquet(path)
    missing = [c for c in CANONICAL if c not in frame.columns]
    if missing:
        raise ValueError(f"decision log {path} lacks columns {missing}")
    return frame[[*CANONICAL, *context_features(frame)]]


def read_service_log(settings: ServiceSettings) -> pd.DataFrame:
    """Decisions the service logged (SQLite or PostgreSQL), with `accept` as the outcome.

    Non-personalised decisions (unknown customers, objections to profiling) are left out:
    their data may not be used to profile them. A decision without an `accept` counts as not
    accepted.
    """
    if not settings.decision_log_url and not settings.decision_log_path.exists():
        return pd.DataFrame(columns=list(CANONICAL))
    log = open_decision_log(settings)
    try:
        frame = log.decisions_frame()
    finally:
        log.close()
    frame = frame[frame["personalised"].astype(int) == 1]
    frame = frame.rename(
        columns={
            "chosen_action": "action_id",
            "selection_probability": "propensity",
            "accepted": "outcome",
        }
    )
    frame["event_timestamp"] = pd.to_datetime(
        frame["created_at"].astype(float), unit="s", utc=True
    ).dt.floor("ms")
    frame["outcome"] = frame["outcome"].astype(np.int64)
    return frame[list(CANONICAL)].reset_index(drop=True)


@dataclass(frozen=True)
class ImportedLog:
    """An imported decision log and the catalog built from its action table."""

    decisions: pd.DataFrame
    catalog: dict[str, object]
    feature_columns: list[str]


def _fail(row: int | None, column: str, message: str) -> LogFormatError:
    where = f"row {row + 1} (line {row + 2} of the file), " if row is not None else ""
    return LogFormatError(f"{where}column '{column}': {message}")


def _read_table(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise FileNotFoundError(f"no file at {path}")
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path)
    raise LogFormatError(f"{path}: use a .csv or .parquet file")


def _first_bad(mask: np.ndarray | pd.Series) -> int | None:
    bad = np.flatnonzero(np.asarray(mask))
    return int(bad[0]) if bad.size else None


def import_log(decisions_path: Path, actions_path: Path) -> ImportedLog:
    """Validate a decision log and its action table, and bring them into the canonical form.

    Decisions need `timestamp`, `action_id`, `propensity` in (0, 1] and `outcome` (0/1) or
    `reward` (> 0 means accepted); `customer_id`, `touchpoint`, `decision_id` and `position`
    are optional; every other column is a numeric context feature. Actions need
    `action_id` and `value`; `cost` and `type` are optional.
    """
    raw = _read_table(decisions_path)
    actions = _read_table(actions_path)
    for column in ("timestamp", "action_id", "propensity"):
        if column not in raw.columns:
            raise _fail(None, column, f"missing from {decisions_path.name}")
    if "outcome" not in raw.columns and "reward" not in raw.columns:
        raise _fail(None, "outcome", f"{decisions_path.name} needs 'outcome' or 'reward'")
    for column in ("action_id", "value"):
        if column not in actions.columns:
            raise _fail(None, column, f"missing from {actions_path.name}")

    times = pd.to_datetime(raw["timestamp"], utc=True, errors="coerce", format="ISO8601")
    if (row := _first_bad(times.isna())) is not None:
        raise _fail(row, "timestamp", f"not a date and time: {raw['timestamp'].iloc[row]!r}")
    propensity = pd.to_numeric(raw["propensity"], errors="coerce")
    if (row := _first_bad(propensity.isna() | (propensity <= 0) | (propensity > 1))) is not None:
        raise _fail(
            row, "propensity", f"must be a number in (0, 1], got {raw['propensity'].iloc[row]!r}"
        )
    source = "outcome" if "outcome" in raw.columns else "reward"
    result = pd.to_numeric(raw[source], errors="coerce")
    if (row := _first_bad(result.isna())) is not None:
        raise _fail(row, source, f"not a number: {raw[source].iloc[row]!r}")
    if source == "outcome" and (row := _first_bad(~result.isin([0, 1]))) is not None:
        raise _fail(row, "outcome", f"must be 0 or 1, got {raw['outcome'].iloc[row]!r}")
    known = set(actions["action_id"].astype(str))
    if (row := _first_bad(~raw["action_id"].astype(str).isin(known))) is not None:
        raise _fail(
            row, "action_id", f"{raw['action_id'].iloc[row]!r} is not in {actions_path.name}"
        )
    touchpoints = (
        raw["touchpoint"].astype(str)
        if "touchpoint" in raw.columns
        else pd.Series([Touchpoint.WEB.value] * len(raw))
    )
    valid_touchpoints = {t.value for t in Touchpoint}
    if (row := _first_bad(~touchpoints.isin(valid_touchpoints))) is not None:
        raise _fail(
            row,
            "touchpoint",
            f"{touchpoints.iloc[row]!r} is not one of {sorted(valid_touchpoints)}",
        )

    features = [c for c in raw.columns if c not in IMPORT_RESERVED]
    frame = pd.DataFrame(
        {
            "decision_id": raw["decision_id"].astype(str)
            if "decision_id" in raw.columns
            else [str(uuid.UUID(int=i)) for i in range(len(raw))],
            "customer_id": raw["customer_id"].astype(str)
            if "customer_id" in raw.columns
            else [f"row-{i}" for i in range(len(raw))],
            "event_timestamp": times,
            "touchpoint": touchpoints.to_numpy(),
            "action_id": raw["action_id"].astype(str),
            "propensity": propensity.astype(float),
            "outcome": (result > 0).astype(np.int64),
        }
    )
    for column in features:
        values = pd.to_numeric(raw[column], errors="coerce")
        if (row := _first_bad(values.isna() & raw[column].notna())) is not None:
            raise _fail(
                row, column, f"context features must be numeric, got {raw[column].iloc[row]!r}"
            )
        frame[column] = values.astype(float)
    return ImportedLog(
        frame.sort_values("event_timestamp", kind="stable").reset_index(drop=True),
        _catalog_from(actions, actions_path, frame),
        features,
    )


def _catalog_from(actions: pd.DataFrame, path: Path, frame: pd.DataFrame) -> dict[str, object]:
    entries: list[dict[str, object]] = []
    types = {t.value for t in ActionType} - {ActionType.NO_ACTION.value}
    for row, record in enumerate(actions.to_dict("records")):
        action_type = str(record.get("type") or ActionType.OFFER.value)
        if action_type not in types:
            raise _fail(row, "type", f"{action_type!r} is not one of {sorted(types)} ({path.name})")
        value = pd.to_numeric(pd.Series([record["value"]]), errors="coerce").iloc[0]
        cost = pd.to_numeric(pd.Series([record.get("cost", 0) or 0]), errors="coerce").iloc[0]
        if pd.isna(value) or value < 0:
            raise _fail(row, "value", f"must be a number >= 0 ({path.name})")
        if pd.isna(cost) or cost < 0:
            raise _fail(row, "cost", f"must be a number >= 0 ({path.name})")
        action_id = str(record["action_id"])
        seen = sorted(frame.loc[frame["action_id"] == action_id, "touchpoint"].unique())
        marketing = action_type in (ActionType.OFFER.value, ActionType.RETENTION.value)
        entries.append(
            {
                "id": action_id,
                "type": action_type,
                "title": action_id,
                "script": action_id,
                "touchpoints": seen or [t.value for t in Touchpoint],
                "value": float(value),
                "cost": float(cost),
                "consent": "marketing" if marketing else "none",
            }
        )
    entries.append(
        {
            "id": NO_ACTION_ID,
            "type": "no_action",
            "title": "No action",
            "script": "Nothing to propose right now.",
            "touchpoints": [t.value for t in Touchpoint],
            "value": 0,
            "cost": 0,
            "consent": "none",
        }
    )
    return {"version": 1, "policy": {"no_action_threshold": 0.0}, "actions": entries}


def write_import(imported: ImportedLog, out_dir: Path) -> tuple[Path, Path]:
    """Write the canonical log and its catalog; training reads them with `--log` and `--catalog`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / "decisions.parquet"
    catalog_path = out_dir / "catalog.yaml"
    imported.decisions.to_parquet(log_path, index=False)
    catalog_path.write_text(yaml.safe_dump(imported.catalog, sort_keys=False), encoding="utf-8")
    return log_path, catalog_path
