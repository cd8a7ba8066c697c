"""API keys: issuing, storage without the key, constant-time lookup, scopes over HTTP."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.auth import ApiKeys, issue_key, scoped
from service.error_handlers import install_error_handlers
from service.errors import ConfigurationError
from service.vocabulary import Scope


def test_issued_keys_are_stored_as_hashes_only(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "keys.yaml"
    key = issue_key(path, "call-center", [Scope.DECIDE, Scope.FEEDBACK])
    other = issue_key(path, "ops", [Scope.ADMIN])
    assert key.startswith("nba_") and len(key) > 40 and key != other
    assert key not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    keys = ApiKeys.load(path)
    found = keys.authenticate(key)
    assert found is not None and found.name == "call-center"
    assert found.scopes == {Scope.DECIDE, Scope.FEEDBACK}
    assert keys.authenticate(key + "x") is None
    with pytest.raises(ConfigurationError, match="exists already"):
        issue_key(path, "ops", [Scope.DECIDE])
    with pytest.raises(ConfigurationError, match="at least one scope"):
        issue_key(path, "web", [])


def test_a_broken_keys_file_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(yaml.safe_dump({"keys": [{"name": "x", "scopes": ["everything"]}]}))
    with pytest.raises(ConfigurationError, match="cannot read the API keys file"):
        ApiKeys.load(path)
    assert ApiKeys.load(None).enabled is False


def _client(keys: ApiKeys) -> TestClient:
    app = FastAPI()
    app.state.api_keys = keys
    install_error_handlers(app)

    @app.get("/decide", dependencies=scoped(Scope.DECIDE))
    def decide() -> dict[str, str]:
        return {"ok": "yes"}

    return TestClient(app)


def test_scopes_over_http(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    decide_key = issue_key(path, "web", [Scope.DECIDE])
    admin_key = issue_key(path, "ops", [Scope.ADMIN])
    client = _client(ApiKeys.load(path))
    assert client.get("/decide", headers={"X-API-Key": decide_key}).status_code == 200
    assert client.get("/decide", headers={"Authorization": f"Bearer {decide_key}"}).json() == {
        "ok": "yes"
    }
    assert client.get("/decide", auth=("anyone", decide_key)).status_code == 200
    forbidden = client.get("/decide", headers={"X-API-Key": admin_key})
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "scope_missing"
    missing = client.get("/decide")
    assert missing.status_code == 401 and "Basic" in missing.headers["www-authenticate"]
    assert missing.json()["error"]["code"] == "api_key_missing"
    assert client.get("/decide", headers={"X-API-Key": "nope"}).json()["error"]["code"] == (
        "api_key_invalid"
    )
    assert _client(ApiKeys.load(None)).get("/decide").status_code == 200
