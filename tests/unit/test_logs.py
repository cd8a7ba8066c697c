from pathlib import Path

import pandas as pd
import pytest

from service.catalog import Catalog
from training.logs import LogFormatError, import_log, write_import

ACTIONS = pd.DataFrame(
    {
        "action_id": ["card", "loan", "tips"],
        "value": [100, 300, 5],
        "cost": [1, 2, 0],
        "type": ["offer", "offer", "info"],
    }
)


def good_log() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "timestamp": ["2026-01-01T10:00:00Z", "2026-01-02 11:00", "2026-01-03"],
            "customer_id": ["a", "b", "a"],
            "touchpoint": ["web", "app", "web"],
            "action_id": ["card", "loan", "tips"],
            "propensity": [0.5, 0.25, 1.0],
            "outcome": [1, 0, 0],
            "age": [31, 45, 31],
            "balance": [100.5, None, 99.0],
        }
    )


def write(
    tmp_path: Path, log: pd.DataFrame, actions: pd.DataFrame = ACTIONS, suffix: str = ".csv"
) -> tuple[Path, Path]:
    log_path, actions_path = tmp_path / f"log{suffix}", tmp_path / f"actions{suffix}"
    if suffix == ".csv":
        log.to_csv(log_path, index=False)
        actions.to_csv(actions_path, index=False)
    else:
        log.to_parquet(log_path, index=False)
        actions.to_parquet(actions_path, index=False)
    return log_path, actions_path


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_good_log_becomes_canonical_with_a_valid_catalog(tmp_path: Path, suffix: str) -> None:
    imported = import_log(*write(tmp_path, good_log(), suffix=suffix))
    frame = imported.decisions
    assert list(frame.columns[:7]) == [
        "decision_id",
        "customer_id",
        "event_timestamp",
        "touchpoint",
        "action_id",
        "propensity",
        "outcome",
    ]
    assert imported.feature_columns == ["age", "balance"]
    assert str(frame["event_timestamp"].dt.tz) == "UTC"
    assert frame["balance"].isna().sum() == 1
    catalog = Catalog.model_validate(imported.catalog)
    assert catalog.by_id("loan").value == 300 and catalog.by_id("tips").consent.value == "none"
    log_path, catalog_path = write_import(imported, tmp_path / "out")
    assert log_path.exists() and catalog_path.exists()


def test_reward_stands_in_for_outcome(tmp_path: Path) -> None:
    log = good_log().drop(columns="outcome").assign(reward=[120.0, 0.0, 0.0])
    assert import_log(*write(tmp_path, log)).decisions["outcome"].tolist() == [1, 0, 0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.drop(columns="propensity"), "column 'propensity': missing"),
        (lambda d: d.drop(columns="outcome"), "needs 'outcome' or 'reward'"),
        (
            lambda d: d.assign(timestamp=["2026-01-01", "yesterday", "2026-01-03"]),
            "row 2 (line 3 of the file), column 'timestamp'",
        ),
        (
            lambda d: d.assign(propensity=[0.5, 0.0, 1.0]),
            "row 2 (line 3 of the file), column 'propensity'",
        ),
        (
            lambda d: d.assign(propensity=[0.5, 0.2, 1.5]),
            "row 3 (line 4 of the file), column 'propensity'",
        ),
        (lambda d: d.assign(outcome=[1, 2, 0]), "column 'outcome': must be 0 or 1"),
        (lambda d: d.assign(action_id=["card", "boat", "tips"]), "'boat' is not in actions.csv"),
        (lambda d: d.assign(touchpoint=["web", "fax", "web"]), "column 'touchpoint'"),
        (lambda d: d.assign(age=[31, "old", 31]), "column 'age': context features must be numeric"),
    ],
)
def test_errors_name_the_row_and_the_column(tmp_path: Path, change, message: str) -> None:
    with pytest.raises(LogFormatError) as err:
        import_log(*write(tmp_path, change(good_log())))
    assert message in str(err.value)


def test_action_table_errors(tmp_path: Path) -> None:
    with pytest.raises(LogFormatError, match=r"row 3 .*column 'value'"):
        import_log(*write(tmp_path, good_log(), ACTIONS.assign(value=[1, 2, -3])))
    with pytest.raises(LogFormatError, match="column 'type'"):
        import_log(*write(tmp_path, good_log(), ACTIONS.assign(type=["offer", "boat", "info"])))
    with pytest.raises(LogFormatError, match="column 'value': missing"):
        import_log(*write(tmp_path, good_log(), ACTIONS.drop(columns="value")))
