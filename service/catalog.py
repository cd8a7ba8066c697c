"""The action catalog: a YAML file product owners edit, validated when it is loaded."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from service.errors import CatalogError
from service.vocabulary import ActionType, Touchpoint

NO_ACTION_ID = "no_action"


class Action(BaseModel):
    """One action the service may recommend."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{1,63}$")
    type: ActionType
    title: str = Field(min_length=1, max_length=120)
    script: str = Field(min_length=1, max_length=500)
    touchpoints: tuple[Touchpoint, ...] = Field(min_length=1)
    value: float = Field(ge=0, description="Business value of an accepted action, in EUR.")
    cost: float = Field(ge=0, description="Cost of showing the action once, in EUR.")


class Catalog(BaseModel):
    """All actions, in file order; ids are unique and exactly one is the no-action."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    actions: tuple[Action, ...] = Field(min_length=2)
    _index: dict[str, Action] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _check_ids(self) -> Catalog:
        seen: set[str] = set()
        for action in self.actions:
            if action.id in seen:
                raise ValueError(f"action '{action.id}' is defined twice")
            seen.add(action.id)
        no_actions = [a.id for a in self.actions if a.type is ActionType.NO_ACTION]
        if no_actions != [NO_ACTION_ID]:
            raise ValueError(
                f"the catalog needs exactly one action of type no_action with id "
                f"'{NO_ACTION_ID}', found {no_actions}"
            )
        self._index = {a.id: a for a in self.actions}
        return self

    def by_id(self, action_id: str) -> Action:
        """Return the action with this id; raises KeyError when there is none."""
        return self._index[action_id]

    def candidates(self, touchpoint: Touchpoint) -> list[Action]:
        """Actions that may be scored at a touchpoint (the no-action is never scored)."""
        return [
            a
            for a in self.actions
            if touchpoint in a.touchpoints and a.type is not ActionType.NO_ACTION
        ]

    @property
    def no_action(self) -> Action:
        """The explicit 'do nothing' answer."""
        return self.by_id(NO_ACTION_ID)


def load_catalog(path: Path) -> Catalog:
    """Read and validate a catalog file; errors name the action and the field at fault."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogError(f"cannot read catalog {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise CatalogError(f"catalog {path} is not valid YAML: {exc}") from exc
    try:
        return Catalog.model_validate(raw)
    except ValidationError as exc:
        raise CatalogError(f"catalog {path} is invalid: {_describe(exc, raw)}") from exc


def _describe(exc: ValidationError, raw: object) -> str:
    """Turn pydantic's locations into 'action <id>, field <name>: message' lines."""
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        where = ".".join(str(p) for p in loc) or "catalog"
        if len(loc) >= 2 and loc[0] == "actions" and isinstance(loc[1], int):
            action_id = _action_id_at(raw, loc[1])
            field = ".".join(str(p) for p in loc[2:]) or "(whole entry)"
            where = f"action '{action_id}' (entry {loc[1] + 1}), field '{field}'"
        lines.append(f"{where}: {err['msg']}")
    return "; ".join(lines)


def _action_id_at(raw: object, index: int) -> str:
    if isinstance(raw, dict):
        actions = raw.get("actions")
        if isinstance(actions, list) and index < len(actions) and isinstance(actions[index], dict):
            return str(actions[index].get("id", "?"))
    return "?"
