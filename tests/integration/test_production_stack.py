"""The production profile end to end, as docker-compose.yml runs it, natively: an `mlflow
server` on PostgreSQL, the bootstrap job, the API with two workers on Redis and PostgreSQL,
API keys, metrics and JSON logs, a hot reload under load, a refused version, and a start
from the local copy while MLflow is down."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import mlflow
import mlflow.lightgbm
import psycopg
import pytest
import redis

from service.vocabulary import ModelRole
from tests.conftest import ROOT, SMALL_WORLD
from tests.integration.native_compose import NativeCompose
from tests.integration.servers import POSTGRES, unavailable
from training.serving import free_port, running_service

pytestmark = pytest.mark.integration

REDIS_DB = 12  # a database index kept for this test
CUSTOMER = "C0000042"


def _executable(arg: str) -> str:
    """`python`, `nba` and `mlflow` from this virtual environment."""
    if arg == "python":
        return sys.executable
    if arg in ("nba", "mlflow"):
        return str(Path(sys.executable).with_name(arg))
    return arg


def _run(command: list[str], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [_executable(command[0]), *command[1:]],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@dataclass
class Stack:
    """The natively running compose stack and how to reach it."""

    compose: NativeCompose
    app_dir: Path
    mlflow_process: subprocess.Popen[bytes]
    tracking_uri: str
    bootstrap_env: dict[str, str]
    api_env: dict[str, str]
    api_command: list[str]
    keys: dict[str, str]
    decisions_db: str

    def nba(self, *args: str) -> str:
        return _run(["nba", *args], self.bootstrap_env, self.app_dir)


def _wait_for(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited:\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not up in {timeout} s:\n{log.read_text()}")


def _issued_key(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("nba_"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    try:
        admin = psycopg.connect(POSTGRES, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        unavailable("PostgreSQL", exc)
    cache = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    try:
        cache.flushdb()
    except redis.ConnectionError as exc:
        unavailable("Redis", exc)
    folder = tmp_path_factory.mktemp("production")
    app_dir = folder / "app"  # the image's /app: the repo's feature_repo, relative paths
    shutil.copytree(
        ROOT / "feature_repo",
        app_dir / "feature_repo",
        ignore=shutil.ignore_patterns("data", "registry.db", "online_store.db", "__pycache__"),
    )
    mlflow_port = free_port()
    compose = NativeCompose(
        variables={"MLFLOW_PORT": str(mlflow_port)},
        db_prefix=f"e2e_{uuid.uuid4().hex[:8]}_",
        redis_db=REDIS_DB,
        paths={"/mlartifacts": str(folder / "mlartifacts")},
    )
    databases = compose.databases()
    for name in databases:
        admin.execute(f'CREATE DATABASE "{name}"')
    mlflow_log = folder / "mlflow.log"
    with mlflow_log.open("w") as out:
        mlflow_process = subprocess.Popen(
            [_executable(a) for a in compose.command("mlflow")],
            env=compose.environment("mlflow"),
            cwd=app_dir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        tracking_uri = f"http://127.0.0.1:{mlflow_port}"
        _wait_for(f"{tracking_uri}/health", mlflow_process, mlflow_log, timeout=180)
        bootstrap_env = {
            **compose.environment("bootstrap"),
            **SMALL_WORLD,
            "NBA_BOOTSTRAP_RESAMPLES": "20",  # intervals are not under test here
        }
        assert bootstrap_env["NBA_MLFLOW_TRACKING_URI"] == tracking_uri
        output = _run(compose.command("bootstrap"), bootstrap_env, app_dir)
        assert "registered" in output or "@champion" in output, output
        keys = {
            name: _issued_key(
                _run(
                    ["nba", "issue-key", "--name", name, "--scopes", scopes], bootstrap_env, app_dir
                )
            )
            for name, scopes in (
                ("call-center", "decide,feedback"),
                ("web", "decide"),
                ("ops", "admin,review"),
            )
        }
        api_env = {
            **compose.environment("api"),
            "NBA_WORKERS": "2",
            "NBA_MODEL_POLL_SECONDS": "0.5",
        }
        yield Stack(
            compose,
            app_dir,
            mlflow_process,
            tracking_uri,
            bootstrap_env,
            api_env,
            [_executable(a) for a in compose.command("api")],
            keys,
            next(n for n in databases if n.endswith("decisions")),
        )
    finally:
        mlflow_process.terminate()
        mlflow_process.wait(timeout=30)
        cache.flushdb()
        for name in databases:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@dataclass
class Api:
    client: httpx.Client
    log_path: Path


@pytest.fixture(scope="module")
def api(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    log_path = tmp_path_factory.mktemp("api") / "api.log"
    with (
        running_service(stack.api_env, stack.app_dir, log_path, command=stack.api_command) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        yield Api(client, log_path)


def decide(api: Api, key: str, customer: str = CUSTOMER) -> httpx.Response:
    return api.client.post(
        "/v1/decisions",
        json={"customer_id": customer, "touchpoint": "call_center"},
        headers={"X-API-Key": key},
    )


def test_the_bootstrap_registered_a_champion_on_the_tracking_server(stack: Stack) -> None:
    client = mlflow.MlflowClient(tracking_uri=stack.tracking_uri)
    champion = client.get_model_version_by_alias("nba-propensity", ModelRole.CHAMPION)
    assert champion.version == "1"
    assert client.get_model_version_download_uri("nba-propensity", "1").startswith(
        "mlflow-artifacts:"
    )
    assert "kept" in stack.nba("bootstrap")  # a second run changes nothing


def test_keys_and_scopes(stack: Stack, api: Api) -> None:
    missing = api.client.post("/v1/decisions", json={"customer_id": CUSTOMER, "touchpoint": "web"})
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "api_key_missing"
    assert "Bearer" in missing.headers["www-authenticate"]
    wrong = decide(api, "nba_not-a-key")
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "api_key_invalid")
    bearer = api.client.post(
        "/v1/decisions",
        json={"customer_id": CUSTOMER, "touchpoint": "web"},
        headers={"Authorization": f"Bearer {stack.keys['web']}"},
    )
    assert bearer.status_code == 200
    decision_id = bearer.json()["decision_id"]
    feedback = {"decision_id": decision_id, "action_id": "no_action", "outcome": "impression"}
    refused = api.client.post(
        "/v1/feedback", json=feedback, headers={"X-API-Key": stack.keys["web"]}
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "scope_missing")
    allowed = api.client.post(
        "/v1/feedback", json=feedback, headers={"X-API-Key": stack.keys["call-center"]}
    )
    assert allowed.status_code == 202
    admin = api.client.post(
        "/admin/models/reload", headers={"X-API-Key": stack.keys["call-center"]}
    )
    assert admin.status_code == 403
    pages = api.client.get("/models", auth=("ops", stack.keys["ops"]))  # a browser's Basic auth
    assert pages.status_code == 200
    assert api.client.get("/models").status_code == 401
    assert api.client.get("/health/ready").status_code == 200


def test_decisions_read_redis_and_are_logged_in_postgres(stack: Stack, api: Api) -> None:
    response = decide(api, stack.keys["call-center"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["personalised"] is True  # features came from Redis
    assert body["model"] == {"name": "nba-propensity", "version": "1", "alias": "champion"}
    url = POSTGRES.rsplit("/", 1)[0] + "/" + stack.decisions_db
    with psycopg.connect(url) as db:
        row = db.execute(
            "SELECT customer_id, model_version FROM decisions WHERE decision_id = %s",
            (body["decision_id"],),
        ).fetchone()
    assert row == (CUSTOMER, "1")


def test_consent_update_takes_effect_on_the_next_decision(stack: Stack, api: Api) -> None:
    customer = "C0000077"
    headers = {"X-API-Key": stack.keys["ops"]}
    path = f"/admin/customers/{customer}/consent"
    withdrawn = api.client.put(path, json={"marketing": [], "profiling": False}, headers=headers)
    assert withdrawn.status_code == 200, withdrawn.text
    body = decide(api, stack.keys["call-center"], customer).json()
    assert body["personalised"] is False
    assert all(a["type"] != "offer" for a in body["ranked"])
    restored = api.client.put(
        path, json={"marketing": ["call_center"], "profiling": True}, headers=headers
    )
    assert restored.status_code == 200
    assert decide(api, stack.keys["call-center"], customer).json()["personalised"] is True
    bad = api.client.put(path, json={"marketing": ["fax"], "profiling": True}, headers=headers)
    assert bad.status_code == 422


def test_metrics_and_json_logs_without_personal_data(stack: Stack, api: Api) -> None:
    response = api.client.post(
        "/v1/decisions",
        json={"customer_id": CUSTOMER, "touchpoint": "web"},
        headers={"X-API-Key": stack.keys["web"], "X-Request-ID": "trace-123"},
    )
    assert response.headers["x-request-id"] == "trace-123"
    metrics = api.client.get("/metrics").text.splitlines()

    def sample(name: str, *labels: str) -> bool:
        return any(line.startswith(name) and all(x in line for x in labels) for line in metrics)

    assert sample(
        "nba_http_request_duration_seconds_bucket", 'route="/v1/decisions"', 'status="200"'
    )
    assert sample("nba_http_request_duration_seconds_count", 'route="/health/ready"')
    assert sample("nba_decisions_total", 'touchpoint="web"', 'role="champion"')
    assert sample("nba_feature_read_seconds_count")
    assert sample("nba_model_version", 'role="champion"', "pid=")  # one sample per worker
    lines = [
        json.loads(line) for line in api.log_path.read_text().splitlines() if line.startswith("{")
    ]
    access = [e for e in lines if e["logger"] == "nba.access"]
    assert any(e["request_id"] == "trace-123" and e["route"] == "/v1/decisions" for e in access)
    assert any(e["caller"] == "ops" for e in access)
    assert {"ts", "level", "message", "duration_ms", "status"} <= set(access[0])
    text = api.log_path.read_text()
    for customer in (CUSTOMER, "C0000077"):
        assert customer not in text


def test_hot_reload_under_load_fails_no_request(stack: Stack, api: Api) -> None:
    stack.nba("train")  # version 2, registered as @challenger
    statuses: Counter[int] = Counter()
    versions: Counter[str] = Counter()
    stop = threading.Event()

    def load(worker: int) -> None:
        with httpx.Client(base_url=str(api.client.base_url), timeout=30) as client:
            n = 0
            while not stop.is_set():
                n += 1
                response = client.post(
                    "/v1/decisions",
                    json={"customer_id": f"C{(worker * 997 + n) % 1500:07d}", "touchpoint": "web"},
                    headers={"X-API-Key": stack.keys["web"]},
                )
                statuses[response.status_code] += 1
                if response.status_code == 200:
                    versions[response.json()["model"]["version"]] += 1

    threads = [threading.Thread(target=load, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(2)
    stack.nba("promote", "--force")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _only_new(api, stack):
        time.sleep(0.5)
    time.sleep(1)
    stop.set()
    for thread in threads:
        thread.join()
    assert statuses == Counter({200: sum(statuses.values())}), statuses
    assert versions["1"] > 0 and versions["2"] > 0
    assert sum(statuses.values()) > 100
    ready = api.client.get("/health/ready").json()["models"]
    assert ready["champion"]["version"] == "2" and ready["last_reload_error"] is None


def _only_new(api: Api, stack: Stack) -> bool:
    """Twenty decisions in a row from version 2 (both workers have swapped)."""
    return all(decide(api, stack.keys["web"]).json()["model"]["version"] == "2" for _ in range(20))


def test_a_broken_version_is_refused_and_the_old_one_serves(stack: Stack, api: Api) -> None:
    client = mlflow.MlflowClient(tracking_uri=stack.tracking_uri)
    mlflow.set_tracking_uri(stack.tracking_uri)
    booster = mlflow.lightgbm.load_model("models:/nba-propensity/2")
    experiment = client.get_experiment_by_name("nba-propensity")
    assert experiment is not None
    with mlflow.start_run(experiment_id=experiment.experiment_id):
        info = mlflow.lightgbm.log_model(  # no feature spec: unusable
            booster, name="model", registered_model_name="nba-propensity"
        )
    broken = str(info.registered_model_version)
    client.set_registered_model_alias("nba-propensity", ModelRole.CHAMPION, broken)
    try:
        deadline = time.monotonic() + 30
        error = None
        while time.monotonic() < deadline and not error:
            time.sleep(0.5)
            error = api.client.get("/health/ready").json()["models"]["last_reload_error"]
        assert error and "feature_spec" in error
        assert decide(api, stack.keys["web"]).json()["model"]["version"] == "2"
        assert 'nba_model_reloads_total{result="refused"}' in api.client.get("/metrics").text
    finally:
        client.set_registered_model_alias("nba-propensity", ModelRole.CHAMPION, "2")


def test_starts_from_the_local_copy_when_mlflow_is_down(
    stack: Stack, api: Api, tmp_path: Path
) -> None:
    stack.mlflow_process.terminate()
    stack.mlflow_process.wait(timeout=30)
    env = {**stack.api_env, "NBA_WORKERS": "1"}
    with (
        running_service(env, stack.app_dir, tmp_path / "api.log", command=stack.api_command) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        models = client.get("/health/ready").json()["models"]
        assert models["source"].startswith("local copy")
        assert models["champion"]["version"] == "2"
        response = client.post(
            "/v1/decisions",
            json={"customer_id": CUSTOMER, "touchpoint": "app"},
            headers={"X-API-Key": stack.keys["web"]},
        )
        assert response.status_code == 200
        assert response.json()["model"]["version"] == "2"
