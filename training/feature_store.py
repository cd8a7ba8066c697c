"""Feast on the training side: apply the repo, materialise online, point-in-time joins."""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from service.feature_client import open_feature_store

log = logging.getLogger(__name__)

ROW_ID = "_row_id"


def apply_repo(repo_path: Path, yaml_file: Path | None = None) -> None:
    """Run `feast apply` on the repo, exactly as a user would from the command line."""
    feast_cli = Path(sys.executable).with_name("feast")
    profile = ["-f", str(yaml_file.resolve())] if yaml_file else []
    command = [str(feast_cli), "-c", str(repo_path), *profile, "apply"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"`feast apply` failed:\n{result.stdout}\n{result.stderr}")
    for line in result.stdout.splitlines():
        if line.strip():
            log.info("feast: %s", line.strip())


def materialize(
    repo_path: Path, end: datetime, lookback: timedelta, yaml_file: Path | None = None
) -> None:
    """Load the latest feature values up to `end` into the online store."""
    store = open_feature_store(repo_path, yaml_file)
    store.materialize(start_date=end - lookback, end_date=end)


def historical_features(
    repo_path: Path,
    entity_df: pd.DataFrame,
    feature_service: str,
    yaml_file: Path | None = None,
) -> pd.DataFrame:
    """Point-in-time join: each entity row gets the features as they were at its timestamp.

    `entity_df` needs `customer_id` and `event_timestamp`; the result keeps its rows and
    their order (Feast does not preserve order, so rows are joined back on a row id).
    """
    store = open_feature_store(repo_path, yaml_file)
    query = entity_df[["customer_id", "event_timestamp"]].copy()
    query[ROW_ID] = range(len(query))
    job = store.get_historical_features(
        entity_df=query, features=store.get_feature_service(feature_service)
    )
    joined = job.to_df().drop(columns=["customer_id", "event_timestamp"])
    joined = joined.set_index(ROW_ID).reindex(range(len(query)))
    joined.index = entity_df.index
    return pd.concat([entity_df, joined], axis=1)
