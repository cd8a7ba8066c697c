"""Champion/challenger routing, shadow scoring and hot reload (our own logic; the registry is
an in-memory stand-in here, the real MLflow server is in the production-profile test)."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from collections import Counter
from pathlib import Path

import pytest

from service.catalog import Catalog
from service.errors import ModelLoadError
from service.features import FeatureSpec
from service.model import LoadedModel, RegistryUnavailableError
from service.served_models import (
    ModelSet,
    Routing,
    ServedModels,
    bucket,
    check_model,
    start_models,
)
from service.vocabulary import ChallengerMode, ModelRole, Touchpoint
from tests.unit.engine_kit import CALM_CUSTOMER, make_kit

SERVED = ("open_complaints", "age")


def version_of(model: LoadedModel, version: str, alias: str = "champion") -> LoadedModel:
    return dataclasses.replace(model, version=version, alias=alias)


def needs_unserved_feature(model: LoadedModel, version: str) -> LoadedModel:
    spec = FeatureSpec(
        customer_features=("open_complaints", "shoe_size"), actions=model.spec.actions
    )
    return dataclasses.replace(model, version=version, spec=spec)


class StandInRegistry:
    """Aliases and versions in memory; counts fetches; can be made unreachable."""

    def __init__(self, versions: dict[str, LoadedModel], aliases: dict[str, str]) -> None:
        self.name = "test"
        self.versions = versions
        self.aliases = aliases
        self.fetches: Counter[str] = Counter()
        self.remembered: dict[str, str] = {}
        self.reachable = True

    def resolve(self, alias: str) -> str | None:
        if not self.reachable:
            raise RegistryUnavailableError("model registry unavailable: connection refused")
        return self.aliases.get(alias)

    def fetch(self, version: str, alias: str) -> LoadedModel:
        self.fetches[version] += 1
        return dataclasses.replace(self.versions[version], alias=alias)

    def load(self, alias: str) -> LoadedModel:
        version = self.resolve(alias)
        assert version is not None
        return self.fetch(version, alias)

    def remember(self, model: LoadedModel) -> None:
        self.remembered[model.alias] = model.version

    def last_good(self, alias: str) -> LoadedModel | None:
        version = self.remembered.get(alias)
        return dataclasses.replace(self.versions[version], alias=alias) if version else None


def test_buckets_are_sticky_and_uniform() -> None:
    assert bucket("C0000042", "nba") == bucket("C0000042", "nba")
    assert bucket("C0000042", "nba") != bucket("C0000042", "other-salt")
    share = sum(bucket(f"C{i:07d}", "nba") < 0.3 for i in range(20_000)) / 20_000
    assert share == pytest.approx(0.3, abs=0.015)


def test_split_serves_a_sticky_share_from_the_challenger(catalog: Catalog, model, tmp_path) -> None:
    customers = {f"c{i}": CALM_CUSTOMER for i in range(400)}
    models = ServedModels(
        ModelSet(model, version_of(model, "2", "challenger")), Routing(ChallengerMode.SPLIT, 0.25)
    )
    kit = make_kit(catalog, model, tmp_path / "log.db", customers, models=models)
    roles = {c: kit.engine.decide(c, Touchpoint.WEB).role for c in customers}
    share = sum(r is ModelRole.CHALLENGER for r in roles.values()) / len(roles)
    assert 0.15 < share < 0.35
    for customer in list(customers)[:50]:
        again = kit.engine.decide(customer, Touchpoint.APP)
        assert again.role is roles[customer]
        assert again.model.version == ("2" if again.role is ModelRole.CHALLENGER else "1")
    logged = kit.log.decisions_frame().groupby("customer_id")["model_version"].nunique()
    assert (logged == 1).all()


def test_shadow_serves_the_champion_and_logs_the_challenger(
    catalog: Catalog, model, tmp_path
) -> None:
    customers = {f"c{i}": CALM_CUSTOMER for i in range(30)}
    models = ServedModels(
        ModelSet(model, version_of(model, "2", "challenger")), Routing(ChallengerMode.SHADOW)
    )
    kit = make_kit(catalog, model, tmp_path / "log.db", customers, models=models)
    decisions = [kit.engine.decide(c, Touchpoint.EMAIL) for c in customers]
    assert {d.role for d in decisions} == {ModelRole.CHAMPION}
    with sqlite3.connect(tmp_path / "log.db") as db:
        rows = db.execute(
            "SELECT d.model_version, s.model_version, s.chosen_action, d.chosen_action, d.explored "
            "FROM decisions d JOIN shadow_decisions s USING (decision_id)"
        ).fetchall()
    assert len(rows) == len(decisions)
    assert {(served, shadow) for served, shadow, *_ in rows} == {("1", "2")}
    # Same booster in both roles: the shadow's choice is the champion's greedy choice.
    assert all(s_action == d_action for _, _, s_action, d_action, explored in rows if not explored)


def test_a_model_needing_unserved_features_is_refused(model) -> None:
    check_model(model, SERVED)
    with pytest.raises(ModelLoadError, match="shoe_size"):
        check_model(needs_unserved_feature(model, "2"), SERVED)


def test_hot_reload_swaps_good_versions_and_refuses_bad_ones(model) -> None:
    registry = StandInRegistry(
        {"1": model, "2": needs_unserved_feature(model, "2"), "3": version_of(model, "3")},
        {"champion": "1"},
    )
    served = start_models(registry, Routing(), SERVED)  # type: ignore[arg-type]
    assert served.current.champion.version == "1"

    registry.aliases["champion"] = "2"
    assert served.refresh() is False
    assert served.current.champion.version == "1"
    assert served.status.last_error and "version 2" in served.status.last_error
    served.refresh()
    assert registry.fetches["2"] == 1  # a refused version is not fetched on every poll
    assert served.status.last_error  # ...and readiness keeps saying why
    served.refresh(retry_refused=True)
    assert registry.fetches["2"] == 2

    registry.aliases["champion"] = "3"
    assert served.refresh() is True
    assert served.current.champion.version == "3"
    assert served.status.last_error is None
    assert registry.remembered["champion"] == "3"


def test_an_unreachable_registry_keeps_the_model_and_says_so(model) -> None:
    registry = StandInRegistry({"1": model}, {"champion": "1"})
    served = start_models(registry, Routing(), SERVED)  # type: ignore[arg-type]
    registry.reachable = False
    assert served.refresh() is False
    assert served.current.champion.version == "1"
    assert "unavailable" in (served.status.last_error or "")
    registry.reachable = True
    served.refresh()
    assert served.status.last_error is None


def test_start_from_the_last_good_copy_when_the_registry_is_down(model) -> None:
    registry = StandInRegistry({"1": model}, {"champion": "1"})
    registry.remember(model)
    registry.reachable = False
    served = start_models(registry, Routing(), SERVED)  # type: ignore[arg-type]
    assert served.current.champion.version == "1"
    assert served.status.source.startswith("local copy")
    registry.remembered.clear()
    with pytest.raises(ModelLoadError, match="no local copy"):
        start_models(registry, Routing(), SERVED)  # type: ignore[arg-type]


def test_challenger_follows_its_alias_and_is_dropped_when_promoted(model) -> None:
    registry = StandInRegistry(
        {"1": model, "2": version_of(model, "2")}, {"champion": "1", "challenger": "2"}
    )
    served = start_models(registry, Routing(ChallengerMode.SPLIT, 0.5), SERVED)  # type: ignore[arg-type]
    assert served.current.challenger and served.current.challenger.version == "2"
    registry.aliases["champion"] = "2"  # promotion: both aliases on version 2
    assert served.refresh() is True
    assert served.current.champion.version == "2"
    assert served.current.champion.alias == "champion"
    assert served.current.challenger is None
    assert registry.fetches["2"] == 1  # the loaded challenger was reused, not fetched again
    assert served.refresh() is False  # and the next poll finds nothing to change


def test_decisions_never_fail_while_models_swap(catalog: Catalog, model, tmp_path: Path) -> None:
    customers = {f"c{i}": CALM_CUSTOMER for i in range(20)}
    registry = StandInRegistry({"1": model, "2": version_of(model, "2")}, {"champion": "1"})
    served = start_models(registry, Routing(), SERVED)  # type: ignore[arg-type]
    kit = make_kit(catalog, model, tmp_path / "log.db", customers, models=served)
    stop = threading.Event()
    seen: Counter[str] = Counter()
    errors: list[BaseException] = []

    def decide() -> None:
        while not stop.is_set():
            try:
                for customer in customers:
                    seen[
                        kit.engine.decide(customer, Touchpoint.WEB, record=False).model.version
                    ] += 1
            except BaseException as exc:
                errors.append(exc)
                return

    workers = [threading.Thread(target=decide) for _ in range(3)]
    for worker in workers:
        worker.start()
    for i in range(40):
        registry.aliases["champion"] = "2" if i % 2 == 0 else "1"
        assert served.refresh() is True
    stop.set()
    for worker in workers:
        worker.join()
    assert errors == []
    assert set(seen) == {"1", "2"}


def test_promotion_of_the_loaded_challenger_updates_the_last_good_copy(model) -> None:
    registry = StandInRegistry(
        {"1": model, "2": version_of(model, "2")}, {"champion": "1", "challenger": "2"}
    )
    served = start_models(registry, Routing(ChallengerMode.SHADOW), SERVED)  # type: ignore[arg-type]
    registry.aliases["champion"] = "2"
    assert served.refresh() is True
    assert registry.remembered["champion"] == "2"


def test_a_champion_failing_its_checks_at_start_falls_back_to_the_last_good_copy(model) -> None:
    registry = StandInRegistry(
        {"1": model, "2": needs_unserved_feature(model, "2")}, {"champion": "2"}
    )
    registry.remember(model)
    served = start_models(registry, Routing(), SERVED)  # type: ignore[arg-type]
    assert served.current.champion.version == "1"
    assert "shoe_size" in served.status.source


def test_unexpected_errors_while_loading_are_refusals_not_crashes(model) -> None:
    registry = StandInRegistry({"1": model}, {"champion": "1"})
    served = start_models(registry, Routing(), SERVED)  # type: ignore[arg-type]

    def malformed(version: str, alias: str) -> LoadedModel:
        raise KeyError("feature_spec")

    registry.fetch = malformed  # type: ignore[method-assign]
    registry.aliases["champion"] = "7"
    assert served.refresh() is False
    assert served.current.champion.version == "1"
    assert "version 7 cannot be used" in (served.status.last_error or "")
