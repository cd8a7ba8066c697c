"""Shared fixtures: the shipped catalog, and a small real stack built by the real CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from service.catalog import Catalog, load_catalog
from service.model import LoadedModel
from service.settings import DEFAULT_CATALOG

ROOT = Path(__file__).resolve().parents[1]
SMALL_WORLD = {
    "NBA_N_CUSTOMERS": "1500",
    "NBA_N_DECISIONS": "24000",
    "NBA_SEED": "11",
    "NBA_AS_OF": "2026-10-01T00:00:00Z",
}


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog(DEFAULT_CATALOG)


@pytest.fixture(scope="session")
def model(catalog: Catalog) -> LoadedModel:
    """A small real LightGBM model for tests of the engine's own logic."""
    from tests.unit.engine_kit import train_model

    return train_model(catalog)


@dataclass(frozen=True)
class Stack:
    """A small world on disk: Feast repo, decision log, MLflow store, and the env to find them."""

    root: Path
    env: dict[str, str]
    demo_outputs: tuple[str, ...]

    @property
    def feature_repo(self) -> Path:
        return Path(self.env["NBA_FEATURE_REPO"])

    @property
    def tracking_uri(self) -> str:
        return self.env["NBA_MLFLOW_TRACKING_URI"]


def stack_env(root: Path) -> dict[str, str]:
    """Environment that points every NBA_* setting into `root`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBA_")}
    env.update(SMALL_WORLD)
    env.update(
        {
            "NBA_FEATURE_REPO": str(root / "feature_repo"),
            "NBA_DATA_DIR": str(root / "data"),
            "NBA_MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
            "NBA_MLFLOW_ARTIFACT_ROOT": str(root / "mlruns" / "artifacts"),
            "NBA_MODEL_CACHE_DIR": str(root / "models"),
        }
    )
    return env


def _run_nba(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    nba = Path(sys.executable).with_name("nba")
    return subprocess.run(
        [str(nba), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run the `nba` command of this environment and return its output; fail loudly."""
    result = _run_nba(args, env, cwd)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"nba {' '.join(args)} failed:\n{output}"
    return output


def run_cli_failing(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run `nba` where it must fail; return its output."""
    result = _run_nba(args, env, cwd)
    assert result.returncode != 0, f"nba {' '.join(args)} should have failed"
    return result.stdout + result.stderr


def copy_feature_repo(root: Path) -> Path:
    """The project's Feast definitions copied to `root/feature_repo`, without generated data."""
    target = root / "feature_repo"
    shutil.copytree(
        ROOT / "feature_repo", target, ignore=shutil.ignore_patterns("data", "__pycache__")
    )
    return target


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`nba demo` run twice on a copy of the feature repo: the same commands as `make demo`."""
    root = tmp_path_factory.mktemp("stack")
    copy_feature_repo(root)
    env = stack_env(root)
    outputs = tuple(run_cli(["demo"], env, root) for _ in range(2))
    yield Stack(root=root, env=env, demo_outputs=outputs)
