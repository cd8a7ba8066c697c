"""Load the served model from the MLflow registry as a native LightGBM booster."""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from dataclasses import dataclass, field
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
from service.fast_predict import SmallBatchPredictor
from service.features import FeatureSpec
from service.urls import redact

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
    _scorer: SmallBatchPredictor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            scorer = SmallBatchPredictor(self.booster)
        except ValueError as exc:
            raise ModelLoadError(f"model {self.name} version {self.version}: {exc}") from exc
        object.__setattr__(self, "_scorer", scorer)

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """Acceptance propensities for a float64 feature matrix (single-threaded: small batches).

        A ranker's scores go through the calibration map it was registered with.
        """
        scores = self._scorer.predict(matrix)
        return self.calibration.apply(scores) if self.calibration else scores

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        """SHAP contributions of each feature to each row's raw score, the expected value
        last (LightGBM's `pred_contrib`, single-threaded)."""
        return self._scorer.contributions(matrix)


class RegistryUnavailableError(ModelLoadError):
    """The registry could not be asked (unreachable, or the alias does not exist)."""


class ModelRegistry:
    """Resolves aliases in the MLflow registry and keeps local copies of loaded versions.

    Each version is copied once to `cache_dir/<name>/<version>`; the last version of an alias
    that passed its checks is remembered in `cache_dir/<name>/<alias>.last-good`, so the
    service can start from it while the registry is unreachable.
    """

    def __init__(self, tracking_uri: str, name: str, cache_dir: Path) -> None:
        self.tracking_uri = tracking_uri
        self.name = name
        self.cache_dir = cache_dir
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def resolve(self, alias: str) -> str | None:
        """The version `alias` points at; None when the alias does not exist."""
        try:
            return str(self._client.get_model_version_by_alias(self.name, alias).version)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise RegistryUnavailableError(
                f"model registry at {redact(self.tracking_uri)} unavailable: {exc.message}"
            ) from exc
        except OSError as exc:
            raise RegistryUnavailableError(
                f"model registry at {redact(self.tracking_uri)} unavailable: {exc}"
            ) from exc

    def fetch(self, version: str, alias: str) -> LoadedModel:
        """Copy the version to the local cache when it is not there yet, then load it."""
        local = self._local(version)
        if not (local / "MLmodel").exists():
            try:
                download_uri = self._client.get_model_version_download_uri(self.name, version)
                _download(download_uri, self.tracking_uri, local)
            except (MlflowException, OSError) as exc:
                raise ModelLoadError(
                    f"cannot download {self.name} version {version}: {exc}"
                ) from exc
        return load_local_model(local, self.name, version, alias)

    def load(self, alias: str) -> LoadedModel:
        """Resolve `alias` and load that version."""
        version = self.resolve(alias)
        if version is None:
            raise RegistryUnavailableError(
                f"no model '{self.name}@{alias}' in the registry at "
                f"{redact(self.tracking_uri)}: run `nba train` first"
            )
        return self.fetch(version, alias)

    def remember(self, model: LoadedModel) -> None:
        """Record `model` as the last good version of its alias (atomic file replace)."""
        pointer = self._pointer(model.alias)
        pointer.parent.mkdir(parents=True, exist_ok=True)
        scratch = pointer.with_name(f"{pointer.name}.{os.getpid()}.{threading.get_ident()}")
        scratch.write_text(model.version)
        scratch.replace(pointer)

    def last_good(self, alias: str) -> LoadedModel | None:
        """The last version of `alias` that served here, from the local copy; None if none."""
        pointer = self._pointer(alias)
        if not pointer.exists():
            return None
        version = pointer.read_text().strip()
        return load_local_model(self._local(version), self.name, version, alias)

    def _local(self, version: str) -> Path:
        return self.cache_dir / self.name / version

    def _pointer(self, alias: str) -> Path:
        return self.cache_dir / self.name / f"{alias}.last-good"


def load_registered_model(tracking_uri: str, name: str, alias: str, cache_dir: Path) -> LoadedModel:
    """Resolve `name@alias` in the registry, copy the version to `cache_dir`, load it."""
    return ModelRegistry(tracking_uri, name, cache_dir).load(alias)


def _download(download_uri: str, tracking_uri: str, target: Path) -> None:
    """Download into a temporary folder, then move into place, so a crash leaves no half copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        fetched = mlflow.artifacts.download_artifacts(
            artifact_uri=download_uri, dst_path=scratch, tracking_uri=tracking_uri
        )
        try:
            Path(fetched).rename(target)
        except OSError:
            if not (target / "MLmodel").exists():
                raise
            # another worker finished the same download first: keep its copy


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
