import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.catalog import Catalog, load_catalog
from service.catalog_holder import CatalogHolder
from service.errors import CatalogError
from service.settings import DEFAULT_CATALOG
from service.vocabulary import ActionType, Touchpoint


def test_shipped_catalog_covers_every_action_type(catalog: Catalog) -> None:
    assert 15 <= len(catalog.actions) <= 25
    assert {a.type for a in catalog.actions} == set(ActionType)
    assert catalog.no_action.type is ActionType.NO_ACTION


def test_candidates_respect_touchpoints_and_never_include_no_action(catalog: Catalog) -> None:
    for touchpoint in Touchpoint:
        candidates = catalog.candidates(touchpoint)
        assert candidates, touchpoint
        assert all(touchpoint in a.touchpoints for a in candidates)
        assert all(a.type is not ActionType.NO_ACTION for a in candidates)
    assert "retention_call_back" not in {a.id for a in catalog.candidates(Touchpoint.WEB)}


def _write(tmp_path: Path, raw: object) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def _shipped() -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(DEFAULT_CATALOG.read_text(encoding="utf-8"))
    return raw


def test_error_names_action_and_field(tmp_path: Path) -> None:
    raw = _shipped()
    raw["actions"][2]["value"] = -5
    with pytest.raises(CatalogError) as err:
        load_catalog(_write(tmp_path, raw))
    assert "action 'mortgage_consultation'" in err.value.message
    assert "field 'value'" in err.value.message


def test_unknown_touchpoint_and_unknown_field_are_refused(tmp_path: Path) -> None:
    raw = _shipped()
    raw["actions"][0]["touchpoints"] = ["web", "fax"]
    raw["actions"][1]["colour"] = "red"
    with pytest.raises(CatalogError) as err:
        load_catalog(_write(tmp_path, raw))
    assert "action 'credit_card_offer'" in err.value.message
    assert "field 'touchpoints.1'" in err.value.message
    assert "action 'personal_loan_offer'" in err.value.message
    assert "colour" in err.value.message


def test_duplicate_ids_and_missing_no_action_are_refused(tmp_path: Path) -> None:
    raw = _shipped()
    raw["actions"].append(dict(raw["actions"][0]))
    with pytest.raises(CatalogError, match="defined twice"):
        load_catalog(_write(tmp_path, raw))
    raw = _shipped()
    raw["actions"] = [a for a in raw["actions"] if a["type"] != "no_action"]
    with pytest.raises(CatalogError, match="no_action"):
        load_catalog(_write(tmp_path, raw))


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot read"):
        load_catalog(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("actions: [\n", encoding="utf-8")
    with pytest.raises(CatalogError, match="not valid YAML"):
        load_catalog(bad)


def test_conditions_over_features_the_store_does_not_serve_are_refused(catalog: Catalog) -> None:
    served = {f for features in catalog.referenced_features().values() for f in features}
    catalog.check_features(served)
    with pytest.raises(CatalogError) as err:
        catalog.check_features(served - {"has_mortgage"})
    assert "action 'mortgage_consultation', field 'eligibility'" in err.value.message
    assert "has_mortgage" in err.value.message


def test_reload_swaps_a_good_catalog_and_keeps_the_last_good_one(
    tmp_path: Path, catalog: Catalog
) -> None:
    served = {f for features in catalog.referenced_features().values() for f in features}
    path = _write(tmp_path, _shipped())
    holder = CatalogHolder(path, served)
    first = holder.current
    raw = _shipped()
    raw["actions"][0]["value"] = 999
    _write(tmp_path, raw)
    assert holder.reload()
    assert holder.current is not first
    assert holder.current.catalog.by_id("credit_card_offer").value == 999
    good = holder.current
    raw["actions"][0]["touchpoints"] = ["fax"]
    _write(tmp_path, raw)
    assert not holder.reload()
    assert holder.current is good
    assert "credit_card_offer" in (holder.last_error or "")
    _write(tmp_path, _shipped())
    assert holder.reload() and holder.last_error is None


def test_watcher_picks_up_a_changed_file(tmp_path: Path, catalog: Catalog) -> None:
    served = {f for features in catalog.referenced_features().values() for f in features}
    path = _write(tmp_path, _shipped())
    holder = CatalogHolder(path, served)
    holder.watch(0.05)
    try:
        raw = _shipped()
        raw["policy"]["no_action_threshold"] = 7.5
        _write(tmp_path, raw)
        os.utime(path, (time.time() + 5, time.time() + 5))
        deadline = time.monotonic() + 10
        while holder.current.catalog.policy.no_action_threshold != 7.5:
            assert time.monotonic() < deadline, "the watcher did not reload the catalog"
            time.sleep(0.05)
    finally:
        holder.stop()


def test_a_broken_catalog_refuses_to_load_at_start(tmp_path: Path) -> None:
    raw = _shipped()
    raw["actions"][3]["eligibility"] = [{"feature": "age", "op": "between", "value": 3}]
    with pytest.raises(CatalogError) as err:
        CatalogHolder(_write(tmp_path, raw), {"age"})
    assert "action 'savings_account_offer'" in err.value.message
    assert "eligibility.0.op" in err.value.message
