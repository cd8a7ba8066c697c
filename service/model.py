"""Load the served model from the MLflow registry as a native LightGBM booster."""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import mlflow.artifacts
import mlflow.lightgbm
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.models import Model
from mlflow.tracking import MlflowClient

from service.calibration import Calibration
from service.errors import ModelLoadError
from service.features import FeatureSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A registered model version ready to score: booster, feature spec and provenance."""

    booster: lgb.Booster
    spec: FeatureSpec
    name: str
    version: str
    alias: str
    calibration: Calibration | None = None

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """Acceptance propensities for a float64 feature matrix (single-threaded: small batches).

        A ranker's scores go through the calibration map it was registered with.
        """
        scores = np.asarray(self.booster.predict(matrix, num_threads=1), dtype=np.float64)
        return self.calibration.apply(scores) if self.calibration else scores


def load_registered_model(tracking_uri: str, name: str, alias: str, cache_dir: Path) -> LoadedModel:
    """Resolve `name@alias` in the registry, copy the version to `cache_dir`, load it."""
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        version = client.get_model_version_by_alias(name, alias).version
        download_uri = client.get_model_version_download_uri(name, version)
    except MlflowException as exc:
        raise ModelLoadError(
            f"no model '{name}@{alias}' in the registry at {tracking_uri}: run `nba train` first"
        ) from exc
    local = cache_dir / name / str(version)
    if not (local / "MLmodel").exists():
        _download(download_uri, tracking_uri, local)
    return load_local_model(local, name, str(version), alias)


def _download(download_uri: str, tracking_uri: str, target: Path) -> None:
    """Download into a temporary folder, then move into place, so a crash leaves no half copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        fetched = mlflow.artifacts.download_artifacts(
            artifact_uri=download_uri, dst_path=scratch, tracking_uri=tracking_uri
        )
        shutil.rmtree(target, ignore_errors=True)
        Path(fetched).rename(target)


def load_local_model(path: Path, name: str, version: str, alias: str) -> LoadedModel:
    """Load a model folder written by MLflow and check it carries a feature spec."""
    try:
        metadata = Model.load(str(path / "MLmodel")).metadata or {}
        booster = mlflow.lightgbm.load_model(str(path))
    except (OSError, MlflowException, ValueError) as exc:
        raise ModelLoadError(
            f"cannot load model {name} version {version} from {path}: {exc}"
        ) from exc
    if not isinstance(booster, lgb.Booster):
        raise ModelLoadError(f"model {name} version {version} is not a LightGBM booster")
    if "feature_spec" not in metadata:
        raise ModelLoadError(f"model {name} version {version} has no feature_spec metadata")
    spec = FeatureSpec.from_dict(metadata["feature_spec"])
    if booster.num_feature() != len(spec.feature_names):
        raise ModelLoadError(
            f"model {name} version {version} expects {booster.num_feature()} inputs, "
            f"its feature spec lists {len(spec.feature_names)}"
        )
    calibration = metadata.get("calibration")
    return LoadedModel(
        booster=booster,
        spec=spec,
        name=name,
        version=version,
        alias=alias,
        calibration=Calibration.from_dict(calibration) if calibration else None,
    )
