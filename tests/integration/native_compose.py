"""Run the services of docker-compose.yml natively: the same commands and environment, with
the compose host names pointed at this machine's Redis, PostgreSQL and processes."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
_VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")
_POSTGRES_DB = re.compile(r"(postgresql(?:\+psycopg)?://[^@/]*@)postgres:5432/(\w+)")
_CREATE_DB = re.compile(r"CREATE DATABASE (\w+)")


@dataclass(frozen=True)
class NativeCompose:
    """Compose services mapped to local servers.

    `variables` fill `${NAME:-default}`; databases get `db_prefix`; Redis uses `redis_db`;
    container paths (`/mlartifacts`) map to `paths`.
    """

    variables: dict[str, str]
    db_prefix: str
    redis_db: int
    paths: dict[str, str]

    @property
    def spec(self) -> dict[str, Any]:
        loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
        return loaded

    def _localise(self, value: str) -> str:
        value = _VARIABLE.sub(lambda m: self.variables.get(m[1], m[2] or ""), value)
        value = _POSTGRES_DB.sub(lambda m: f"{m[1]}127.0.0.1:5432/{self.db_prefix}{m[2]}", value)
        value = value.replace("redis:6379,db=0", f"127.0.0.1:6379,db={self.redis_db}")
        value = value.replace("0.0.0.0", "127.0.0.1")
        value = re.sub(r"\bmlflow:", "127.0.0.1:", value)
        for container_path, local_path in self.paths.items():
            value = value.replace(container_path, local_path)
        return value

    def command(self, service: str) -> list[str]:
        """The service's command with variables, hosts and paths made local."""
        return [self._localise(str(arg)) for arg in self.spec["services"][service]["command"]]

    def environment(self, service: str) -> dict[str, str]:
        """This process's environment without NBA_* settings, plus the service's own."""
        own = self.spec["services"][service].get("environment", {})
        env = {k: v for k, v in os.environ.items() if not k.startswith("NBA_")}
        env.update({k: self._localise(str(v)) for k, v in own.items()})
        return env

    def databases(self) -> list[str]:
        """The databases the postgres init script creates, with the prefix."""
        script = self.spec["configs"]["postgres-init"]["content"]
        return [f"{self.db_prefix}{name}" for name in _CREATE_DB.findall(script)]
