"""What the registry knows about the models in service, for the product-owner pages."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import mlflow.artifacts
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from service.errors import NBAError
from service.vocabulary import ModelRole

SERVED_ALIASES = tuple(ModelRole)
CARD = "card/card.html"
COMPARISON = "card/comparison.html"


class CardNotFoundError(NBAError):
    """No model card for that version (or no comparison for the challenger)."""

    code = "card_not_found"
    status_code = 404


@dataclass(frozen=True)
class ServedModel:
    """One model version with an alias, and its headline figures."""

    alias: str
    version: str
    family: str
    created: int  # ms since the epoch
    auc: float | None
    policy_value: float | None
    true_value: float | None


class ModelDirectory:
    """Reads aliases, runs and card artifacts from the MLflow registry (cached per version)."""

    def __init__(self, tracking_uri: str, model_name: str) -> None:
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self._pages: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def served(self) -> list[ServedModel]:
        """The champion and the challenger, where they exist."""
        models = []
        for alias in SERVED_ALIASES:
            try:
                version = self._client.get_model_version_by_alias(self.model_name, alias)
            except MlflowException:
                continue
            metrics = self._client.get_run(str(version.run_id)).data.metrics
            models.append(
                ServedModel(
                    alias=alias,
                    version=str(version.version),
                    family=str(version.tags.get("model_family", "")),
                    created=int(version.creation_timestamp),
                    auc=metrics.get("candidate/auc"),
                    policy_value=metrics.get("candidate/dr"),
                    true_value=metrics.get("candidate/true_value"),
                )
            )
        return models

    def page(self, version: str, artifact: str) -> str:
        """An HTML artifact (card or comparison) logged with a version's run."""
        key = (version, artifact)
        with self._lock:
            if key in self._pages:
                return self._pages[key]
        try:
            run_id = str(self._client.get_model_version(self.model_name, version).run_id)
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=artifact, tracking_uri=self.tracking_uri
            )
        except (MlflowException, OSError) as exc:
            raise CardNotFoundError(
                f"no {Path(artifact).name} for {self.model_name} version {version}"
            ) from exc
        text = Path(local).read_text(encoding="utf-8")
        with self._lock:
            self._pages[key] = text
        return text

    def challenger_version(self) -> str:
        """The challenger's version; CardNotFoundError when there is none."""
        for model in self.served():
            if model.alias == ModelRole.CHALLENGER:
                return model.version
        raise CardNotFoundError("there is no challenger to compare")
