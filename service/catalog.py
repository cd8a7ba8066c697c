"""The action catalog: a YAML file product owners edit, validated when it is loaded.

Besides the actions it holds the decision policy: the no-action threshold, the overall
contact cap per customer and exploration per touchpoint.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from service.errors import CatalogError
from service.vocabulary import ActionType, Touchpoint

NO_ACTION_ID = "no_action"


class Operator(StrEnum):
    """Comparison of a customer feature with a constant."""

    EQ = "eq"
    NE = "ne"
    LT = "lt"
    LE = "le"
    GT = "gt"
    GE = "ge"
    IN = "in"
    NOT_IN = "not_in"


_SYMBOLS = {
    Operator.EQ: "==",
    Operator.NE: "!=",
    Operator.LT: "<",
    Operator.LE: "<=",
    Operator.GT: ">",
    Operator.GE: ">=",
    Operator.IN: "in",
    Operator.NOT_IN: "not in",
}


class Condition(BaseModel):
    """`feature op value`, e.g. `{feature: has_mortgage, op: eq, value: 0}`. Data, never code."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    feature: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    op: Operator
    value: float | list[float]

    @model_validator(mode="after")
    def _value_fits_operator(self) -> Condition:
        is_list = isinstance(self.value, list)
        if self.op in (Operator.IN, Operator.NOT_IN) and not is_list:
            raise ValueError(f"operator '{self.op.value}' needs a list of values")
        if self.op not in (Operator.IN, Operator.NOT_IN) and is_list:
            raise ValueError(f"operator '{self.op.value}' needs a single value")
        return self

    def describe(self) -> str:
        """Readable form, used in 'why not' traces: 'open_complaints == 0'."""
        if isinstance(self.value, list):
            shown = "[" + ", ".join(f"{v:g}" for v in self.value) + "]"
        else:
            shown = f"{self.value:g}"
        return f"{self.feature} {_SYMBOLS[self.op]} {shown}"


class ConsentPurpose(StrEnum):
    """The consent an action needs before it may be shown."""

    NONE = "none"  # service, information: no marketing consent needed
    MARKETING = "marketing"  # needs marketing consent for the touchpoint's channel


class ContactCap(BaseModel):
    """At most `max_count` contacts within `window_days`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_count: int = Field(ge=0)
    window_days: float = Field(gt=0, le=366)


class ContactPolicy(BaseModel):
    """How often one action may be shown to one customer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cap: ContactCap | None = None
    cooldown_days_after_reject: float = Field(0, ge=0, le=366)


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
    consent: ConsentPurpose = ConsentPurpose.MARKETING
    eligibility: tuple[Condition, ...] = ()
    contact_policy: ContactPolicy = ContactPolicy()
    lever: float = Field(1.0, ge=0, le=100, description="Multiplies the expected value.")
    priority: int = Field(
        0,
        ge=0,
        le=100,
        description="Above 0: a must-do action that wins whenever it passes every rule; "
        "higher priorities win over lower ones.",
    )
    valid_from: date | None = None
    valid_until: date | None = None

    @model_validator(mode="after")
    def _check_action(self) -> Action:
        if self.valid_from and self.valid_until and self.valid_until < self.valid_from:
            raise ValueError("valid_until is before valid_from")
        if self.type in (ActionType.OFFER, ActionType.RETENTION) and (
            self.consent is not ConsentPurpose.MARKETING
        ):
            raise ValueError(f"actions of type {self.type.value} need consent: marketing")
        return self


class ExplorationMethod(StrEnum):
    """How the shown action departs from the best one, to keep learning."""

    NONE = "none"
    EPSILON_GREEDY = "epsilon_greedy"
    SOFTMAX = "softmax"


class Exploration(BaseModel):
    """Exploration at one touchpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: ExplorationMethod = ExplorationMethod.NONE
    epsilon: float = Field(0.0, ge=0, le=1, description="epsilon_greedy: share of random picks")
    temperature: float = Field(10.0, gt=0, description="softmax: EUR of expected value per e-fold")

    @model_validator(mode="after")
    def _check(self) -> Exploration:
        if self.method is ExplorationMethod.EPSILON_GREEDY and self.epsilon <= 0:
            raise ValueError("epsilon_greedy needs epsilon > 0")
        return self


class DecisionPolicy(BaseModel):
    """Rules that hold for every action."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    no_action_threshold: float = Field(
        0.0, description="Expected value (EUR) an action must beat, else the answer is no_action"
    )
    customer_contact_cap: ContactCap | None = Field(
        None, description="Contacts per customer over all actions (no_action is no contact)"
    )
    exploration: dict[Touchpoint, Exploration] = Field(default_factory=dict)

    def exploration_at(self, touchpoint: Touchpoint) -> Exploration:
        """Exploration settings of a touchpoint (none when not configured)."""
        return self.exploration.get(touchpoint, Exploration())


class Catalog(BaseModel):
    """All actions, in file order, and the decision policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    policy: DecisionPolicy = DecisionPolicy()
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

    def find(self, action_id: str) -> Action | None:
        """The action with this id, or None."""
        return self._index.get(action_id)

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

    def referenced_features(self) -> dict[str, set[str]]:
        """Customer features each action's eligibility conditions read."""
        return {a.id: {c.feature for c in a.eligibility} for a in self.actions if a.eligibility}

    def check_features(self, available: set[str]) -> None:
        """Refuse conditions over features the feature store does not serve."""
        problems = [
            f"action '{action_id}', field 'eligibility': unknown feature '{feature}'"
            for action_id, features in self.referenced_features().items()
            for feature in sorted(features - available)
        ]
        if problems:
            raise CatalogError("catalog is invalid: " + "; ".join(problems))


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
