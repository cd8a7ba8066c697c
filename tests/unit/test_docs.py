"""The README documents every setting, and the compose file uses only real settings."""

from __future__ import annotations

import re

import yaml

from tests.conftest import ROOT
from training.settings import TrainingSettings

README = (ROOT / "README.md").read_text()
SETTINGS = {f"NBA_{name.upper()}" for name in TrainingSettings.model_fields}  # service's too
PROFILE_VARIABLES = {
    "NBA_REDIS_URL",
    "NBA_REDIS_CLUSTER_NODES",
    "NBA_FEAST_REGISTRY_URL",
}  # Feast profiles


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    table = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`(NBA_[A-Z_]+)`", table))
    assert SETTINGS - documented == set(), "settings missing from the README"
    assert documented - SETTINGS - PROFILE_VARIABLES == set(), (
        "the README documents settings that do not exist"
    )


def test_compose_sets_only_existing_settings() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    used = {
        name
        for service in compose["services"].values()
        for name in service.get("environment", {})
        if name.startswith("NBA_")
    }
    assert used - SETTINGS - PROFILE_VARIABLES == set()
