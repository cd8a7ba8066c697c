"""Champion and challenger in the MLflow registry: register, promote behind gates, roll back."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from service.vocabulary import ModelRole
from training.settings import TrainingSettings

log = logging.getLogger(__name__)

PREVIOUS_CHAMPION_TAG = "previous_champion"
COMPARED_WITH_TAG = "compared_with_champion"


def client_for(settings: TrainingSettings) -> MlflowClient:
    """A client on the configured tracking store and registry."""
    uri = settings.mlflow_tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version an alias points at, or None."""
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


@dataclass(frozen=True)
class GateResult:
    """Whether a challenger may become champion, and every reason it may not."""

    challenger: str | None
    champion: str | None
    refusals: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    already_champion: bool = False

    @property
    def passed(self) -> bool:
        """True when no gate refused."""
        return self.challenger is not None and not self.refusals


def check_gates(settings: TrainingSettings) -> GateResult:
    """Compare the challenger's holdout results with the champion's on the same holdout."""
    client = client_for(settings)
    name = settings.model_name
    challenger = alias_version(client, name, ModelRole.CHALLENGER)
    champion = alias_version(client, name, ModelRole.CHAMPION)
    if challenger is None:
        return GateResult(None, champion, ["there is no challenger: run `nba train` first"])
    if challenger == champion:
        return GateResult(challenger, champion, already_champion=True)
    version = client.get_model_version(name, challenger)
    metrics = client.get_run(str(version.run_id)).data.metrics
    refusals: list[str] = []
    checks: list[str] = []
    compared = version.tags.get(COMPARED_WITH_TAG, "none")
    if champion is not None and compared != champion:
        refusals.append(
            f"the challenger was evaluated against version {compared}, but the "
            f"champion is now version {champion}: train again"
        )
        return GateResult(challenger, champion, refusals, checks)

    calibration = metrics.get("candidate/calibration_error", float("inf"))
    limit = settings.promote_max_calibration_error
    (checks if calibration <= limit else refusals).append(
        f"calibration error {calibration:.4f} (limit {limit:.4f})"
    )
    if champion is None:
        checks.append("no champion yet: nothing to compare with")
        return GateResult(challenger, champion, refusals, checks)

    new, old = metrics["candidate/dr"], metrics["champion/dr"]
    needed = old + settings.promote_min_lift * abs(old)
    (checks if new >= needed else refusals).append(
        f"policy value (doubly robust) {new:.2f} EUR vs champion {old:.2f} EUR "
        f"(needs >= {needed:.2f})"
    )
    for key in sorted(k for k in metrics if k.startswith("champion/touchpoint_")):
        slice_name = key.split("/")[1]
        old_slice = metrics[key]
        new_slice = metrics.get(f"candidate/{slice_name}/dr", float("-inf"))
        floor = old_slice - settings.promote_max_slice_drop * abs(old_slice)
        (checks if new_slice >= floor else refusals).append(
            f"{slice_name}: {new_slice:.2f} EUR vs champion {old_slice:.2f} EUR (floor {floor:.2f})"
        )
    return GateResult(challenger, champion, refusals, checks)


def promote(settings: TrainingSettings, force: bool = False) -> GateResult:
    """Move the champion alias to the challenger when every gate passes (or when forced)."""
    result = check_gates(settings)
    if result.challenger is None or result.already_champion or (not result.passed and not force):
        return result
    client = client_for(settings)
    if result.champion is not None:
        client.set_model_version_tag(
            settings.model_name, result.challenger, PREVIOUS_CHAMPION_TAG, result.champion
        )
    client.set_registered_model_alias(settings.model_name, ModelRole.CHAMPION, result.challenger)
    log.info("version %s is champion now (was %s)", result.challenger, result.champion)
    return result


def rollback(settings: TrainingSettings) -> tuple[str, str]:
    """Point the champion alias back at the version it replaced; returns (from, to)."""
    client = client_for(settings)
    current = alias_version(client, settings.model_name, ModelRole.CHAMPION)
    if current is None:
        raise ValueError("there is no champion to roll back")
    previous = client.get_model_version(settings.model_name, current).tags.get(
        PREVIOUS_CHAMPION_TAG
    )
    if not previous:
        raise ValueError(f"champion version {current} replaced no earlier champion")
    client.set_registered_model_alias(settings.model_name, ModelRole.CHAMPION, previous)
    return current, previous
