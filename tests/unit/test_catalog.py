from pathlib import Path

import pytest
import yaml

from service.catalog import Catalog, load_catalog
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


def _shipped() -> dict:
    return yaml.safe_load(DEFAULT_CATALOG.read_text(encoding="utf-8"))


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
