"""The models in service: champion and challenger, sticky routing, shadow mode, hot reload.

`ServedModels` holds an immutable `ModelSet`; a reload builds a new set in the background
and replaces the reference in one assignment, so a request sees either the old set or the
new one, never a mix. A version that fails its checks is refused and the old set serves on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from service.errors import ModelLoadError
from service.features import customer_vector, featurize
from service.metrics import MODEL_RELOADS, MODEL_VERSION
from service.model import LoadedModel, ModelRegistry, RegistryUnavailableError
from service.polling import Poller
from service.vocabulary import ChallengerMode, ModelRole, Touchpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSet:
    """The champion and, when there is one, the challenger."""

    champion: LoadedModel
    challenger: LoadedModel | None = None

    def get(self, role: ModelRole) -> LoadedModel | None:
        """The model of `role`, if any."""
        return self.champion if role is ModelRole.CHAMPION else self.challenger


@dataclass(frozen=True)
class ModelChoice:
    """The model that decides for a customer, and the one scored alongside in shadow mode."""

    served: LoadedModel
    role: ModelRole
    shadow: LoadedModel | None = None


def bucket(customer_id: str, salt: str) -> float:
    """A stable number in [0, 1) per customer: the same customer always lands in one bucket."""
    digest = hashlib.blake2b(f"{salt}:{customer_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class Routing:
    """Which customers the challenger serves (split) or is scored for (shadow)."""

    mode: ChallengerMode = ChallengerMode.OFF
    share: float = 0.0
    salt: str = "nba"

    def choose(self, models: ModelSet, customer_id: str) -> ModelChoice:
        """Champion unless the customer's bucket falls in the challenger's share."""
        challenger = models.challenger
        if challenger is None or self.mode is ChallengerMode.OFF:
            return ModelChoice(models.champion, ModelRole.CHAMPION)
        if self.mode is ChallengerMode.SHADOW:
            return ModelChoice(models.champion, ModelRole.CHAMPION, shadow=challenger)
        if bucket(customer_id, self.salt) < self.share:
            return ModelChoice(challenger, ModelRole.CHALLENGER)
        return ModelChoice(models.champion, ModelRole.CHAMPION)

    @property
    def roles(self) -> tuple[ModelRole, ...]:
        """The aliases to follow in the registry."""
        if self.mode is ChallengerMode.OFF:
            return (ModelRole.CHAMPION,)
        return (ModelRole.CHAMPION, ModelRole.CHALLENGER)


def check_model(model: LoadedModel, served_features: Collection[str]) -> None:
    """Refuse a model that needs features the feature service does not serve, or whose smoke
    prediction (every touchpoint, features missing and present) is not a probability."""
    missing = set(model.spec.customer_features) - set(served_features)
    if missing:
        raise ModelLoadError(
            f"model {model.name} version {model.version} needs features {sorted(missing)} "
            "that the feature service does not serve"
        )
    spec = model.spec
    n = len(spec.actions)
    rows = []
    for values in (None, dict.fromkeys(spec.customer_features, 0)):
        for touchpoint in Touchpoint:
            rows.append(
                featurize(
                    spec,
                    customer_vector(spec, values),
                    list(spec.actions),
                    [spec.action_types[0]] * n,
                    [touchpoint.value] * n,
                )
            )
    try:
        scores = model.predict(np.vstack(rows))
        model.contributions(rows[0][:1])
    except Exception as exc:  # LightGBM raises bare exceptions on malformed input
        raise ModelLoadError(
            f"model {model.name} version {model.version} failed its smoke prediction: {exc}"
        ) from exc
    if not np.all(np.isfinite(scores)) or scores.min() < 0 or scores.max() > 1:
        raise ModelLoadError(
            f"model {model.name} version {model.version} predicts values outside [0, 1]"
        )


@dataclass(frozen=True)
class ModelStatus:
    """What readiness and the metrics say about the models."""

    source: str
    last_error: str | None
    checked_at: float | None


class ServedModels:
    """Holds the models in service and follows the registry aliases.

    Without a registry (tests, notebooks) it simply serves the set it was given.
    """

    def __init__(
        self,
        initial: ModelSet,
        routing: Routing | None = None,
        registry: ModelRegistry | None = None,
        served_features: Collection[str] = (),
        source: str = "registry",
    ) -> None:
        self.current = initial
        self.routing = routing or Routing()
        self._registry = registry
        self._features = tuple(served_features)
        self.status = ModelStatus(source, None, None)
        self._refused: dict[ModelRole, tuple[str, str]] = {}  # role -> (version, why)
        self._reload_lock = threading.Lock()
        self._poller = Poller("model-watcher", self.refresh)
        self._publish()

    def choose(self, customer_id: str) -> ModelChoice:
        """The model that decides for this customer (and its shadow)."""
        return self.routing.choose(self.current, customer_id)

    def refresh(self, retry_refused: bool = False) -> bool:
        """Ask the registry where the aliases point; load, check and swap in what changed.

        Returns True when the set in service changed. A refused version is not tried again
        on later polls unless `retry_refused` (the admin reload does that).
        """
        if self._registry is None:
            return False
        with self._reload_lock:
            if retry_refused:
                self._refused.clear()
            try:
                updated = self._load_changes(self._registry)
            except RegistryUnavailableError as exc:
                MODEL_RELOADS.labels("registry_unreachable").inc()
                self._set_status(exc.message)
                log.warning("model registry check failed, serving on: %s", exc.message)
                return False
            except ModelLoadError as exc:
                MODEL_RELOADS.labels("refused").inc()
                self._set_status(exc.message)
                log.error("model version refused, the old model keeps serving: %s", exc.message)
                return False
            pending = [why for _, why in self._refused.values()]
            self._set_status(pending[0] if pending else None, source="registry")
            if updated is None:
                return False
            self.current = updated
            self._publish()
            MODEL_RELOADS.labels("swapped").inc()
            log.info(
                "now serving champion version %s%s",
                updated.champion.version,
                f", challenger version {updated.challenger.version}" if updated.challenger else "",
            )
            return True

    def _load_changes(self, registry: ModelRegistry) -> ModelSet | None:
        models = {role: self.current.get(role) for role in ModelRole}
        changed = False
        for role in self.routing.roles:
            version = registry.resolve(role.value)
            champion = models[ModelRole.CHAMPION]
            if role is ModelRole.CHALLENGER and champion and version == champion.version:
                version = None  # promoted: the champion serves that version
            refused = self._refused.get(role)
            if refused and refused[0] != version:
                del self._refused[role]  # the alias moved on
            elif refused:
                continue
            loaded = models[role]
            if version is None and role is ModelRole.CHAMPION:
                raise RegistryUnavailableError("the champion alias no longer exists")
            if (loaded.version if loaded else None) == version:
                continue
            models[role] = self._load(registry, role, version, models) if version else None
            changed = True
        champion = models[ModelRole.CHAMPION]
        challenger = models[ModelRole.CHALLENGER]
        assert champion is not None
        if not changed:
            return None
        return ModelSet(champion, challenger)

    def _load(
        self,
        registry: ModelRegistry,
        role: ModelRole,
        version: str,
        models: dict[ModelRole, LoadedModel | None],
    ) -> LoadedModel:
        already = next((m for m in models.values() if m and m.version == version), None)
        if already is not None:
            model = dataclasses.replace(already, alias=role.value)
        else:
            try:
                model = registry.fetch(version, role.value)
                check_model(model, self._features)
            except ModelLoadError as exc:
                self._refused[role] = (version, exc.message)
                raise
            except Exception as exc:  # malformed metadata raises KeyError, TypeError...
                message = f"{registry.name} version {version} cannot be used: {exc!r}"
                self._refused[role] = (version, message)
                raise ModelLoadError(message) from exc
        registry.remember(model)
        return model

    def watch(self, interval: float) -> None:
        """Poll the registry every `interval` seconds in a background thread (0: never)."""
        if self._registry is not None:
            self._poller.start(interval)

    def stop(self) -> None:
        """Stop polling."""
        self._poller.stop()

    def _set_status(self, error: str | None, source: str | None = None) -> None:
        self.status = ModelStatus(source or self.status.source, error, time.time())

    def _publish(self) -> None:
        for role in ModelRole:
            model = self.current.get(role)
            MODEL_VERSION.labels(role.value).set(float(model.version) if model else 0)


def start_models(
    registry: ModelRegistry, routing: Routing, served_features: Collection[str]
) -> ServedModels:
    """Load the champion (and the challenger when routing uses one) and check them.

    When the registry cannot be asked, or its champion fails the checks, start from the last
    good local copy of the champion.
    """
    try:
        champion = registry.load(ModelRole.CHAMPION.value)
        check_model(champion, served_features)
        source = "registry"
    except ModelLoadError as exc:  # unreachable registry, or a version that fails its checks
        fallback = registry.last_good(ModelRole.CHAMPION.value)
        if fallback is None:
            raise ModelLoadError(f"{exc.message}; and no local copy of a last good model") from exc
        log.warning("%s; starting from the local copy of version %s", exc.message, fallback.version)
        check_model(fallback, served_features)
        champion, source = fallback, f"local copy (registry: {exc.message})"
    registry.remember(champion)
    models = ServedModels(ModelSet(champion), routing, registry, served_features, source)
    if source == "registry" and routing.mode is not ChallengerMode.OFF:
        models.refresh()
    return models
