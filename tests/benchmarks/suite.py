"""The benchmark suite (`make bench`): run on purpose, never as a test.

Sections: the in-process floor and the naive stack; HTTP latency at fixed rates and at the
maximum, on the SQLite and the Redis online store, reasons on and off; where an answer's
time goes (each step timed inside the API under load and back to back); decision-log write
throughput on SQLite and PostgreSQL; materialisation throughput; training time and peak
memory; and, only when asked for (`--sections soak`), a
soak: decisions and feedback at a fixed rate for 10 minutes with the workers' memory
sampled. Prints every figure and writes JSON and a markdown table (with date and machine)
to `bench-results/`.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import httpx
import mlflow
import numpy as np
import pandas as pd
import redis
import yaml

from service.catalog import load_catalog
from service.runtime import build_runtime
from service.settings import DEFAULT_CATALOG, ServiceSettings
from service.vocabulary import Touchpoint
from tests.benchmarks.capacity import BULK_ENGINE_LABEL, HTTP_WORKERS
from tests.benchmarks.decision_log_bench import scratch_postgres, section_decision_log
from tests.benchmarks.floor import measure_floor, measure_naive
from tests.benchmarks.loadgen import Request, Sample, open_loop, open_loop_mixed
from training.feature_store import apply_repo, materialize
from training.redis_engine import ENGINE_TYPE
from training.serving import running_service
from training.simulator import SimulationConfig, simulate, write_world

ROOT = Path(__file__).resolve().parents[2]
TOUCHPOINT = Touchpoint.CALL_CENTER
CANDIDATES = 25
REDIS_DB = 13  # a database index kept for the benchmarks
ONLINE_STORES = ("sqlite", "redis")
BULK_REDIS_ENGINE = ENGINE_TYPE
FEAST_ENGINE_MAX_CUSTOMERS = 100_000  # Feast's own Redis writer is compared up to this size
AS_OF = datetime(2026, 10, 1, tzinfo=UTC)


def log(message: str) -> None:
    print(f"{datetime.now():%H:%M:%S} {message}", flush=True)


def bench_catalog(folder: Path) -> Path:
    """The shipped catalog, with variants of its offers added until the call center has
    `CANDIDATES` candidates (the model scores variants it never saw as unknown actions)."""
    raw = yaml.safe_load(DEFAULT_CATALOG.read_text())
    catalog = load_catalog(DEFAULT_CATALOG)
    have = len(catalog.candidates(TOUCHPOINT))
    offers = [a for a in raw["actions"] if a["type"] == "offer"]
    for i in range(CANDIDATES - have):
        variant = {**offers[i % len(offers)]}
        variant["id"] = f"{variant['id']}_variant_{i}"
        variant["touchpoints"] = [TOUCHPOINT.value]
        raw["actions"].append(variant)
    path = folder / "catalog_25.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert len(load_catalog(path).candidates(TOUCHPOINT)) == CANDIDATES
    return path


def store_yaml(repo: Path, online: str, engine: str = "local") -> Path:
    """A feature_store.yaml for `repo`: local registry, SQLite or Redis online store; Redis
    is written by `engine` (Feast's "local" or `BULK_REDIS_ENGINE`)."""
    store = (
        {"type": "sqlite", "path": "data/online_store.db"}
        if online == "sqlite"
        else {"type": "redis", "connection_string": f"127.0.0.1:6379,db={REDIS_DB}"}
    )
    config = {
        "project": "nba",
        "provider": "local",
        "registry": f"data/registry_{online}.db",
        "online_store": store,
        "offline_store": {"type": "duckdb"},
        "batch_engine": engine,
        "entity_key_serialization_version": 3,
    }
    path = repo / f"feature_store_{online}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def copy_repo(source: Path, target: Path) -> Path:
    shutil.copytree(
        source,
        target,
        ignore=shutil.ignore_patterns("registry*.db", "online_store.db", "__pycache__", "profiles"),
    )
    return target


def _used_memory(client: redis.Redis) -> int:
    info: dict[str, Any] = client.info("memory")  # type: ignore[assignment]  # sync client
    return int(info["used_memory"])


def materialise(
    repo: Path,
    online: str,
    customers: int,
    end: datetime = AS_OF,
    engine: str = BULK_REDIS_ENGINE,
) -> dict[str, Any]:
    """Apply and materialise `repo` up to `end` into one online store with `engine` (Redis
    only; SQLite always goes through Feast's local engine); time it."""
    client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    engine = engine if online == "redis" else "local"
    if online == "redis":
        client.flushdb()
    yaml_file = store_yaml(repo, online, engine)
    apply_repo(repo, yaml_file)
    before = _used_memory(client) if online == "redis" else 0
    started = time.perf_counter()
    materialize(repo, end + timedelta(seconds=1), timedelta(days=400), yaml_file)
    seconds = time.perf_counter() - started
    row: dict[str, Any] = {
        "online_store": online,
        "engine": BULK_ENGINE_LABEL if engine == BULK_REDIS_ENGINE else "Feast local",
        "customers": customers,
        "seconds": round(seconds, 2),
        "customers_per_s": round(customers / seconds),
    }
    if online == "redis":
        used = _used_memory(client) - before
        row["redis_bytes_per_customer"] = round(used / customers)
    log(f"materialise {customers:,} customers into {online} ({row['engine']}): {seconds:.1f} s")
    return row


def section_materialise(sizes: list[int], work: Path) -> list[dict[str, Any]]:
    rows = []
    catalog = load_catalog(DEFAULT_CATALOG)
    for n in sizes:
        folder = work / f"world_{n}"
        repo = copy_repo(ROOT / "feature_repo", folder / "feature_repo")
        shutil.rmtree(repo / "data", ignore_errors=True)
        log(f"simulating {n:,} customers for materialisation")
        config = SimulationConfig(n_customers=n, n_decisions=1000, as_of=AS_OF, seed=7)
        write_world(simulate(config, catalog), repo / "data", folder / "data")
        for online in ONLINE_STORES:
            rows.append(materialise(repo, online, n))
        if n <= FEAST_ENGINE_MAX_CUSTOMERS:  # for comparison: about 10x slower
            rows.append(materialise(repo, "redis", n, engine="local"))
        shutil.rmtree(folder)
    return rows


PEAK_MEMORY_WRAPPER = (
    "import resource, subprocess, sys; "
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)"
)


def section_training(sizes: list[int], work: Path) -> list[dict[str, Any]]:
    """`nba features` then `nba train` on a world of 20,000 customers and `n` decisions."""
    rows = []
    nba = str(Path(sys.executable).with_name("nba"))
    for n in sizes:
        folder = work / f"train_{n}"
        repo = copy_repo(ROOT / "feature_repo", folder / "feature_repo")
        shutil.rmtree(repo / "data", ignore_errors=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("NBA_")} | {
            "NBA_FEATURE_REPO": str(repo),
            "NBA_DATA_DIR": str(folder / "data"),
            "NBA_TRAINING_LOG": str(folder / "data" / "decisions.parquet"),
            "NBA_MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
            "NBA_MLFLOW_ARTIFACT_ROOT": str(folder / "artifacts"),
            "NBA_MODEL_CACHE_DIR": str(folder / "models"),
            "NBA_N_DECISIONS": str(n),
            "NBA_AS_OF": AS_OF.isoformat(),
        }
        for step in ("simulate", "features"):
            subprocess.run([nba, step], env=env, check=True, capture_output=True)
        log(f"training on {n:,} logged decisions")
        started = time.perf_counter()
        # A small wrapper forks the training process: a child forked from this (large)
        # process would inherit its peak resident memory in ru_maxrss.
        done = subprocess.run(
            [sys.executable, "-c", PEAK_MEMORY_WRAPPER, nba, "train"],
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
        output, status = done.stdout + done.stderr, done.returncode
        peak_kb = int(done.stdout.strip().splitlines()[-1]) if status == 0 else 0
        if status != 0:
            raise RuntimeError(f"nba train failed:\n{output}")
        client = mlflow.MlflowClient(tracking_uri=env["NBA_MLFLOW_TRACKING_URI"])
        experiment = client.get_experiment_by_name("nba-propensity")
        if experiment is None:
            raise RuntimeError("nba train logged no nba-propensity experiment")
        run = client.search_runs([experiment.experiment_id])[0]
        metrics = run.data.metrics
        row = {
            "decisions": n,
            "nba_train_wall_s": round(wall, 1),
            "join_fit_evaluate_s": round(metrics["train_seconds"], 1),
            "fit_s": round(metrics.get("fit_seconds", float("nan")), 1),
            "peak_memory_mb": round(peak_kb / 1024),
        }
        log(f"training on {n:,} decisions: {row}")
        rows.append(row)
        shutil.rmtree(folder)
    return rows


def redis_world(work: Path) -> tuple[Path, Path]:
    """A copy of the demo feature repo materialised into Redis (db 13) once per run: the
    repo and its Redis store configuration."""
    repo = work / "redis_repo" / "feature_repo"
    if not repo.exists():
        copy_repo(ROOT / "feature_repo", repo)
        customers = len(pd.read_parquet(repo / "data" / "customer_profile.parquet"))
        materialise(repo, "redis", customers, end=datetime.now(UTC))
    return repo, repo / "feature_store_redis.yaml"


@contextmanager
def service_on(
    online: str,
    catalog_path: Path,
    work: Path,
    tag: str | None = None,
    decision_log_url: str | None = None,
    workers: int = HTTP_WORKERS,
    command: tuple[str, ...] = (sys.executable, "-m", "service"),
) -> Iterator[str]:
    """The API (`HTTP_WORKERS` unless told) on the demo world, with the SQLite or the Redis online
    store; its SQLite decision log and its output are named after `tag` (default: `online`);
    `command` serves it (`tests.benchmarks.in_situ`: with its steps timed)."""
    tag = tag or online
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBA_")} | {
        "NBA_CATALOG_PATH": str(catalog_path),
        "NBA_DECISION_LOG_PATH": str(work / f"decisions_{tag}.db"),
        "NBA_WORKERS": str(workers),
        "NBA_LOG_LEVEL": "warning",
        "NBA_MODEL_POLL_SECONDS": "0",
        "NBA_CATALOG_RELOAD_SECONDS": "0",
    }
    if online == "redis":
        repo, yaml_file = redis_world(work)
        env |= {"NBA_FEATURE_REPO": str(repo), "NBA_FEATURE_STORE_YAML": str(yaml_file)}
    if decision_log_url:
        env["NBA_DECISION_LOG_URL"] = decision_log_url
    with running_service(env, ROOT, work / f"service_{tag}.log", command=command) as url:
        yield url


def _bodies(customers: list[str], reasons: bool) -> list[bytes]:
    return [
        json.dumps({"customer_id": c, "touchpoint": TOUCHPOINT.value, "reasons": reasons}).encode()
        for c in customers
    ]


def fixed_rate_row(name: str, samples: list[Sample], seconds: float) -> dict[str, Any]:
    """Requests, errors (no answer or a status of 400 or more), throughput and latency
    percentiles of the answered requests, for one run of the open-loop generator."""
    errors = sum(1 for s in samples if s.status == 0 or s.status >= 400)
    return {
        "run": name,
        "requests": len(samples),
        "errors": errors,
        "throughput_per_s": round(len(samples) / seconds, 1),
        **_percentiles([s.latency_ms for s in samples if s.status]),
    }


WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local i = 0
request = function()
  i = i + 1
  local body = string.format('{"customer_id":"C%%07d","touchpoint":"%s","reasons":%s}', i %% %d)
  return wrk.format(nil, "/v1/decisions", nil, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK %%d %%d %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status, latency:percentile(50),
    latency:percentile(95), latency:percentile(99)))
end
"""

# Paced wrk: each request takes the next slot of one schedule at `rate`/s (wrk's delay()
# hook, with LuaJIT's FFI for a monotonic clock in milliseconds); a connection whose answer
# is late only delays its own next request, while the others keep the schedule.
WRK_PACING = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } nba_timespec;
int clock_gettime(int clock_id, nba_timespec *tp);
]]
local now_spec = ffi.new("nba_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, now_spec)  -- CLOCK_MONOTONIC
  return tonumber(now_spec.tv_sec) * 1000 + tonumber(now_spec.tv_nsec) / 1e6
end
local interval, due = 1000 / %d, nil
delay = function()
  local now = now_ms()
  due = (due or now) + interval
  return math.max(0, due - now)
end
"""
WRK_CONNECTIONS = 8


@functools.cache
def wrk_installed() -> bool:
    """Whether Debian's wrk is on the PATH; when not, said once per run."""
    if shutil.which("wrk") is None:
        log("wrk not installed (Debian package wrk): wrk runs skipped")
        return False
    return True


def wrk_run(
    url: str, reasons: bool, seconds: int, work: Path, customers: int, rate: int | None = None
) -> dict[str, Any] | None:
    """wrk (1 thread, 8 connections) for `seconds`: closed loop at its maximum, or paced at
    `rate` requests/s; latency counts from when wrk sends a request to its whole answer."""
    if not wrk_installed():
        return None
    script = work / "decide.lua"
    lua = WRK_SCRIPT % (TOUCHPOINT.value, "true" if reasons else "false", customers)
    script.write_text(lua + (WRK_PACING % rate if rate else ""))
    out = subprocess.run(
        ["wrk", "-t1", f"-c{WRK_CONNECTIONS}", f"-d{seconds}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("WRK "))
    requests, duration_us, socket_errors, status_errors, p50, p95, p99 = map(int, line.split()[1:])
    pace = f"{rate}/s paced" if rate else "max"
    return {
        "run": f"{pace} (wrk, {WRK_CONNECTIONS} connections)",
        "requests": requests,
        "errors": socket_errors + status_errors,
        "throughput_per_s": round(requests / (duration_us / 1e6), 1),
        "p50_ms": round(p50 / 1000, 2),
        "p95_ms": round(p95 / 1000, 2),
        "p99_ms": round(p99 / 1000, 2),
    }


def fixed_rate_runs(
    url: str, bodies: list[bytes], rates: list[int], seconds: int
) -> list[dict[str, Any]]:
    """A 3 s warm-up at 100/s, then `seconds` of decisions at each of `rates` to `url`."""
    host, port = url.removeprefix("http://").split(":")
    open_loop(host, int(port), "/v1/decisions", bodies, 100, 3)
    rows = []
    for rate in rates:
        began = time.perf_counter()
        samples = open_loop(host, int(port), "/v1/decisions", bodies, rate, seconds)
        rows.append(fixed_rate_row(f"{rate}/s fixed", samples, time.perf_counter() - began))
    return rows


BARE_APP = "none: bare ASGI app"  # the online-store column of the transport-only rows


def load_runs(
    url: str,
    customers: list[str],
    reasons: bool,
    rates: list[int],
    seconds: int,
    work: Path,
    peak: bool = True,
) -> list[dict[str, Any]]:
    """Every run against one server: the open-loop generator at each of `rates`, wrk paced at
    each of them and, with `peak`, wrk unpaced for the maximum."""
    rows = fixed_rate_runs(url, _bodies(customers, reasons), rates, seconds)
    for rate in [*rates, None] if peak else rates:
        run = wrk_run(url, reasons, seconds, work, len(customers), rate)
        rows += [run] if run else []
    return rows


def _labelled(
    online: str, reasons: bool, runs: list[dict[str, Any]], workers: int = HTTP_WORKERS
) -> list[dict[str, Any]]:
    """Rows of the http table: each run with its server, workers and reasons setting, logged."""
    rows = [{"online_store": online, "workers": workers, "reasons": reasons, **run} for run in runs]
    for row in rows:
        log(f"{online}, reasons {'on' if reasons else 'off'}: {row}")
    return rows


def bare_transport(
    customers: list[str], work: Path, seconds: int, rates: list[int]
) -> list[dict[str, Any]]:
    """The same fixed-rate runs against `tests.benchmarks.bare_app` (uvicorn, 2 workers,
    an answer of `{}`): what transport and load generators cost before any decision work."""
    command = (sys.executable, "-m", "tests.benchmarks.bare_app")
    log_path = work / "service_bare.log"
    with running_service(dict(os.environ), ROOT, log_path, command=command) as url:
        runs = load_runs(url, customers, False, rates, seconds, work, peak=False)
    return _labelled(BARE_APP, False, runs)


def section_http(
    customers: list[str], catalog_path: Path, work: Path, seconds: int, rates: list[int]
) -> list[dict[str, Any]]:
    rows = bare_transport(customers, work, seconds, rates)
    for online in ONLINE_STORES:
        with service_on(online, catalog_path, work) as url:
            for reasons in (True, False):
                runs = load_runs(url, customers, reasons, rates, seconds, work)
                rows += _labelled(online, reasons, runs)
    return rows + more_workers_max(customers, catalog_path, work, seconds)


# Paced wrk at 100/s before a measured run on a fresh service: every worker is up and warm.
WARM_UP_SECONDS = 10

# A decision runs on its worker's event loop (service/placement.py) and leaves the worker's
# core idle while it waits on Redis and the decision log: one worker more than the 2 cores.
MORE_WORKERS = 3


def more_workers_max(
    customers: list[str], catalog_path: Path, work: Path, seconds: int
) -> list[dict[str, Any]]:
    """wrk unpaced, reasons on and off, against the API on Redis with `MORE_WORKERS`
    workers, after `WARM_UP_SECONDS` of paced wrk (the service answers once its first
    worker is up; its new connections must find them all)."""
    tag = f"redis_{MORE_WORKERS}_workers"
    rows: list[dict[str, Any]] = []
    with service_on("redis", catalog_path, work, tag=tag, workers=MORE_WORKERS) as url:
        wrk_run(url, False, WARM_UP_SECONDS, work, len(customers), 100)
        for reasons in (True, False):
            run = wrk_run(url, reasons, seconds, work, len(customers))
            rows += _labelled("redis", reasons, [run] if run else [], MORE_WORKERS)
    return rows


def section_breakdown(
    customers: list[str], catalog_path: Path, work: Path, seconds: int, rate: int, decisions: int
) -> dict[str, Any] | None:
    """Each step of an answer timed inside the API (`tests.benchmarks.in_situ`: Redis, one
    worker, reasons off) while paced wrk sends `rate` requests/s for `seconds`, after
    `WARM_UP_SECONDS` at that rate; then the same steps for `decisions` decisions back to
    back in that worker."""
    command = (sys.executable, "-m", "tests.benchmarks.in_situ")
    with service_on("redis", catalog_path, work, "breakdown", workers=1, command=command) as url:
        if wrk_run(url, False, WARM_UP_SECONDS, work, len(customers), rate) is None:
            return None
        httpx.post(f"{url}/_bench/reset").raise_for_status()
        run = wrk_run(url, False, seconds, work, len(customers), rate)
        tight: dict[str, str | int] = {
            "decisions": decisions,
            "customers": len(customers),
            "touchpoint": TOUCHPOINT.value,
        }
        httpx.post(f"{url}/_bench/tight", params=tight, timeout=600).raise_for_status()
        steps = httpx.get(f"{url}/_bench/steps").json()
    log(f"breakdown: {run}")
    return {"rate": rate, "seconds": seconds, "decisions": decisions, "wrk": run, **steps}


def breakdown_markdown(breakdown: dict[str, Any]) -> list[str]:
    """The breakdown section's table: each step served and back to back, with their ratio."""
    served, tight, run = breakdown["served"], breakdown["tight"], breakdown["wrk"]
    rows: list[list[object]] = [
        [
            "wrk: request sent to answer received",
            *(f"{run[q] * 1000:.0f}" for q in ("p50_ms", "p99_ms")),
            "",
            "",
        ]
    ]
    for label, figures in served.items():
        cells = [label, f"{figures['p50_us']:.0f}", f"{figures['p99_us']:.0f}"]
        back_to_back = tight.get(label, {}).get("p50_us")
        if back_to_back is None:
            rows.append([*cells, "", ""])
        else:
            rows.append([*cells, f"{back_to_back:.0f}", f"{figures['p50_us'] / back_to_back:.1f}"])
    return table(
        f"Where an answer's time goes (`tests.benchmarks.in_situ`: the API on Redis, 1 worker, "
        f"reasons off; paced wrk at {breakdown['rate']}/s for {breakdown['seconds']} s, then "
        f"{breakdown['decisions']:,} decisions back to back in the same worker; microseconds):",
        ["step", "served p50", "served p99", "back to back p50", "served / back to back (p50)"],
        rows,
    )


SOAK_WORKERS = HTTP_WORKERS  # service_on's default
OUTCOMES = ("impression", "click", "accept", "reject", "dismiss")


class SoakTraffic:
    """What the soak sends: decisions for the demo customers in turn and, after every
    `feedback_every` decisions, a feedback event on a recently answered decision (each
    decision gets at most one event, so every event is new, not a duplicate)."""

    def __init__(self, customers: list[str], feedback_every: int) -> None:
        self.customers = customers
        self.cycle = feedback_every + 1
        self.answered: deque[tuple[str, str]] = deque(maxlen=1000)
        self.decisions_sent = 0
        self.feedback_sent = 0
        self.no_action = 0

    def next_request(self, i: int) -> Request:
        """Request `i` of the run, made when it is due."""
        if i % self.cycle == self.cycle - 1 and self.answered:
            decision_id, action_id = self.answered.popleft()
            outcome = OUTCOMES[self.feedback_sent % len(OUTCOMES)]
            self.feedback_sent += 1
            event = {"decision_id": decision_id, "action_id": action_id, "outcome": outcome}
            return "feedback", "/v1/feedback", json.dumps(event).encode()
        customer = self.customers[self.decisions_sent % len(self.customers)]
        self.decisions_sent += 1
        body = {"customer_id": customer, "touchpoint": TOUCHPOINT.value}
        return "decision", "/v1/decisions", json.dumps(body).encode()

    def on_answer(self, kind: str, status: int, body: bytes) -> None:
        """Keep answered decisions for feedback (only the fields needed are read)."""
        if kind == "decision" and status == 200:
            answer = json.loads(body)
            action = answer["action"]["action_id"]
            self.answered.append((answer["decision_id"], action))
            self.no_action += action == "no_action"


def _children(pid: int) -> list[int]:
    """PIDs whose parent is `pid`, from /proc."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(stat.parent.name))
    return children


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def api_workers() -> list[int]:
    """The uvicorn workers of the API this process started (`python -m service`'s children
    spawned by multiprocessing; not its resource tracker)."""
    return sorted(
        worker
        for master in _children(os.getpid())
        if "-m service" in _cmdline(master)
        for worker in _children(master)
        if "spawn_main" in _cmdline(worker)
    )


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process in MB (VmRSS), None when it is gone."""
    with contextlib.suppress(OSError, StopIteration):
        line = next(
            line
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith("VmRSS:")
        )
        return int(line.split()[1]) / 1024
    return None


class RssSampler(threading.Thread):
    """Samples every API worker's resident memory every `interval` seconds, and once more
    when stopped; time is seconds since the sampler started."""

    def __init__(self, interval: float) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.samples: list[tuple[float, dict[int, float]]] = []
        self.halt = threading.Event()
        self.began = time.monotonic()

    def sample(self) -> None:
        rss = {pid: round(mb, 1) for pid in api_workers() if (mb := rss_mb(pid)) is not None}
        at = round(time.monotonic() - self.began, 1)
        self.samples.append((at, rss))
        if len(self.samples) % 6 == 1:
            log(f"soak at {at:.0f} s: worker RSS MB {rss}")

    def run(self) -> None:
        self.sample()
        while not self.halt.wait(self.interval):
            self.sample()

    def finish(self) -> None:
        self.halt.set()
        self.join()
        self.sample()


def _percentiles(latencies: list[float]) -> dict[str, float]:
    values = np.asarray(latencies) if latencies else np.asarray([np.nan])
    return {f"p{q}_ms": round(float(np.percentile(values, q)), 2) for q in (50, 95, 99)}


def _counts(samples: list[Sample]) -> dict[str, int]:
    return {
        "requests": len(samples),
        "non_2xx": sum(1 for s in samples if s.status and not 200 <= s.status < 300),
        "errors": sum(1 for s in samples if s.status == 0),
    }


def soak_summary(
    samples: list[Sample],
    rss: list[tuple[float, dict[int, float]]],
    traffic: SoakTraffic,
    settings: dict[str, Any],
) -> dict[str, Any]:
    """Totals, latency per kind and per minute, and each worker's memory over the run."""
    minutes = []
    for minute in range(int(np.ceil(settings["seconds"] / 60))):
        chunk = [s for s in samples if minute * 60 <= s.due_s < (minute + 1) * 60]
        answered = [s.latency_ms for s in chunk if s.status]
        minutes.append({"minute": minute + 1, **_counts(chunk), **_percentiles(answered)})
    by_kind = {
        kind: {**_counts(part), **_percentiles([s.latency_ms for s in part if s.status])}
        for kind in ("decision", "feedback")
        if (part := [s for s in samples if s.kind == kind])
    }
    workers = []
    for pid in sorted({pid for _, sample in rss for pid in sample}):
        points = [(at, sample[pid]) for at, sample in rss if pid in sample]
        times = np.asarray([at for at, _ in points])
        mbs = np.asarray([mb for _, mb in points])
        slope = float(np.polyfit(times, mbs, 1)[0]) * 60 if len(points) > 2 else float("nan")
        workers.append(
            {
                "pid": pid,
                "samples": len(points),
                "start_mb": float(mbs[0]),
                "end_mb": float(mbs[-1]),
                "max_mb": float(mbs.max()),
                "growth_mb_per_min": round(slope, 2),
            }
        )
    totals = _counts(samples)
    decided = sum(1 for s in samples if s.kind == "decision" and s.status == 200)
    summary = {
        **settings,
        **totals,
        "statuses": dict(Counter(str(s.status) for s in samples)),
        "no_action_share": round(traffic.no_action / decided, 3) if decided else None,
        "by_kind": by_kind,
        "minutes": minutes,
        "workers": workers,
        "rss_samples": [
            {"at_s": at, "rss_mb": {str(p): mb for p, mb in s.items()}} for at, s in rss
        ],
    }
    summary["passed"] = (
        totals["non_2xx"] == 0 and totals["errors"] == 0 and len(workers) == SOAK_WORKERS
    )
    return summary


def section_soak(
    customers: list[str],
    catalog_path: Path,
    work: Path,
    seconds: int,
    rate: float,
    feedback_every: int,
    decision_log: str = "sqlite",
) -> dict[str, Any]:
    """The API as the http section starts it (2 workers, Redis online store; the SQLite
    decision log, or PostgreSQL on a fresh database) under `rate` requests/s of decisions
    and feedback for `seconds`, open loop."""
    settings = {
        "seconds": seconds,
        "rate": rate,
        "feedback_every": feedback_every,
        "online_store": "redis",
        "decision_log": decision_log,
        "worker_processes": SOAK_WORKERS,
        "rss_interval_s": 10,
    }
    with contextlib.ExitStack() as stack:
        log_url = stack.enter_context(scratch_postgres()) if decision_log == "postgres" else None
        url = stack.enter_context(service_on("redis", catalog_path, work, "soak", log_url))
        host, port = url.removeprefix("http://").split(":")
        open_loop(host, int(port), "/v1/decisions", _bodies(customers, True), 100, 3)  # warm-up
        traffic = SoakTraffic(customers, feedback_every)
        log(f"soak: {seconds} s at {rate}/s, one feedback per {feedback_every} decisions")
        sampler = RssSampler(interval=10)
        sampler.start()
        try:
            samples = open_loop_mixed(
                host, int(port), traffic.next_request, rate, seconds, on_answer=traffic.on_answer
            )
        finally:
            sampler.finish()
    summary = soak_summary(samples, sampler.samples, traffic, settings)
    log(
        f"soak: {summary['requests']} requests, {summary['non_2xx']} non-2xx, "
        f"{summary['errors']} errors, workers {summary['workers']}"
    )
    return summary


def section_floor(
    customers: list[str], catalog_path: Path, work: Path, decisions: int
) -> dict[str, Any]:
    """The in-process floor and the naive stack on each online store."""
    floor: dict[str, Any] = {}
    naive: dict[str, Any] = {}
    for online in ONLINE_STORES:
        settings = ServiceSettings(
            catalog_path=catalog_path,
            decision_log_path=work / f"floor_log_{online}.db",
            catalog_reload_seconds=0,
            model_poll_seconds=0,
        )
        if online == "redis":
            repo, yaml_file = redis_world(work)
            settings = settings.model_copy(
                update={"feature_repo": repo, "feature_store_yaml": yaml_file}
            )
        runtime = build_runtime(settings)
        try:
            log(f"in-process floor on the {online} online store, {decisions} decisions")
            floor[online] = measure_floor(runtime, customers, TOUCHPOINT, decisions)
            naive[online] = measure_naive(runtime, customers, TOUCHPOINT, min(decisions, 500))
        finally:
            runtime.close()
    return {"floor": floor, "naive": naive}


SPEED_CHECK_ADDITIONS = 10_000_000


def speed_check() -> float:
    """Seconds for a pure-Python loop of 10M additions, best of 3: how fast this host runs
    Python at the moment (hosts, and the same host from hour to hour, differ severalfold)."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(SPEED_CHECK_ADDITIONS):
            total += i
        best = min(best, time.perf_counter() - started)
    return round(best, 2)


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "speed_check_s": speed_check(),
    }


def table(title: str, header: list[str], rows: list[list[object]]) -> list[str]:
    """A titled markdown table (first column left-aligned, the others right-aligned)."""
    return [
        title,
        "",
        "| " + " | ".join(header) + " |",
        "|---|" + "---:|" * (len(header) - 1),
        *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows),
        "",
    ]


KIND_LABELS = {"decision": "decisions", "feedback": "feedback events"}


def soak_markdown(soak: dict[str, Any]) -> list[str]:
    """The soak's verdict line, latency per minute and memory per worker."""
    kinds = ", ".join(f"{v['requests']} {KIND_LABELS[k]}" for k, v in soak["by_kind"].items())
    verdict = "passed" if soak["passed"] else "FAILED"
    share = soak["no_action_share"]
    no_action = f"{share:.0%} of decisions answered no_action" if share is not None else ""
    return [
        f"Soak ({verdict}): {soak['seconds']} s at {soak['rate']} requests/s "
        f"({kinds}; one feedback per {soak['feedback_every']} decisions), "
        f"{soak['online_store']} online store, {soak['decision_log']} decision log, "
        f"{soak['worker_processes']} workers, load generator on the same machine: "
        f"{soak['requests']} requests, {soak['non_2xx']} non-2xx, {soak['errors']} errors; "
        f"{no_action}.",
        "",
        *table(
            "Latency by request (from the scheduled send time):",
            ["request", "requests", "non-2xx", "errors", "p50 ms", "p95 ms", "p99 ms"],
            [
                [
                    KIND_LABELS[kind],
                    v["requests"],
                    v["non_2xx"],
                    v["errors"],
                    v["p50_ms"],
                    v["p95_ms"],
                    v["p99_ms"],
                ]
                for kind, v in soak["by_kind"].items()
            ],
        ),
        *table(
            "Latency per minute, both kinds:",
            ["minute", "requests", "non-2xx", "errors", "p50 ms", "p95 ms", "p99 ms"],
            [
                [
                    m["minute"],
                    m["requests"],
                    m["non_2xx"],
                    m["errors"],
                    m["p50_ms"],
                    m["p95_ms"],
                    m["p99_ms"],
                ]
                for m in soak["minutes"]
            ],
        ),
        *table(
            f"Worker resident memory (VmRSS every {soak['rss_interval_s']} s; growth is the "
            "least-squares slope):",
            ["worker pid", "samples", "start MB", "end MB", "max MB", "growth MB/min"],
            [
                [
                    w["pid"],
                    w["samples"],
                    w["start_mb"],
                    w["end_mb"],
                    w["max_mb"],
                    w["growth_mb_per_min"],
                ]
                for w in soak["workers"]
            ],
        ),
    ]


def markdown(results: dict[str, Any]) -> str:
    """The results as markdown tables."""
    meta = results["machine"]
    lines = [
        f"Benchmarks of {meta['date']} on {meta['cpu']} ({meta['cores']} cores), "
        f"Python {meta['python']}; `{results['command']}`",
        "",
        f"Speed check (`speed_check`: a pure-Python loop of 10M additions, best of 3): "
        f"{meta['speed_check_s']} s at the start, {meta['speed_check_end_s']} s at the end.",
        "",
    ]
    if "floor" in results:
        stores = list(results["floor"])
        lines += table(
            f"In-process, {CANDIDATES} candidates at {TOUCHPOINT.value}, per online store "
            "(microseconds):",
            ["step", *(f"{store} p{q}" for store in stores for q in (50, 95, 99))],
            [
                [
                    name,
                    *(
                        f"{results[part][store][name][f'p{q}_us']:.0f}"
                        for store in stores
                        for q in (50, 95, 99)
                    ),
                ]
                for part in ("floor", "naive")
                for name in results[part][stores[0]]
            ],
        )
    if results.get("http"):
        lines += table(
            f"HTTP `POST /v1/decisions`, {CANDIDATES} candidates, SQLite decision log, load "
            "generator on the same machine:",
            [
                "online store",
                "workers",
                "reasons",
                "run",
                "requests",
                "errors",
                "req/s",
                "p50 ms",
                "p95 ms",
                "p99 ms",
            ],
            [
                [
                    r["online_store"],
                    r.get("workers", HTTP_WORKERS),
                    "on" if r["reasons"] else "off",
                    r["run"],
                    r["requests"],
                    r["errors"],
                    r["throughput_per_s"],
                    r["p50_ms"],
                    r["p95_ms"],
                    r["p99_ms"],
                ]
                for r in results["http"]
            ],
        )
    if results.get("breakdown"):
        lines += breakdown_markdown(results["breakdown"])
    if results.get("soak"):
        lines += soak_markdown(results["soak"])
    if results.get("decision_log"):
        lines += table(
            "Decision-log writes (customer session + history read + append of 25 candidates; "
            "feedback committed one by one):",
            [
                "backend",
                "threads",
                "decisions",
                "decisions/s",
                "p50 ms",
                "p99 ms",
                "feedback/s",
                "feedback p99 ms",
                "bytes/decision",
            ],
            [
                [
                    r["backend"],
                    r["threads"],
                    f"{r['decisions']:,}",
                    f"{r['decisions_per_s']:,}",
                    r["decision_p50_ms"],
                    r["decision_p99_ms"],
                    f"{r['feedback_per_s']:,}",
                    r["feedback_p99_ms"],
                    r["bytes_per_decision"],
                ]
                for r in results["decision_log"]
            ],
        )
    if results.get("materialise"):
        lines += table(
            "Materialisation (`FeatureStore.materialize`, 3 feature views, 13 weekly snapshots):",
            [
                "online store",
                "engine",
                "customers",
                "seconds",
                "customers/s",
                "Redis bytes/customer",
            ],
            [
                [
                    r["online_store"],
                    r.get("engine", "Feast local"),
                    f"{r['customers']:,}",
                    r["seconds"],
                    f"{r['customers_per_s']:,}",
                    r.get("redis_bytes_per_customer", ""),
                ]
                for r in results["materialise"]
            ],
        )
    if results.get("training"):
        lines += table(
            "Training (`nba train`: point-in-time join, both model families, evaluation, card; "
            "20,000 customers):",
            [
                "decisions",
                "`nba train` wall s",
                "join + fit + evaluate s",
                "fit s",
                "peak memory MB",
            ],
            [
                [
                    f"{r['decisions']:,}",
                    r["nba_train_wall_s"],
                    r["join_fit_evaluate_s"],
                    r["fit_s"],
                    r["peak_memory_mb"],
                ]
                for r in results["training"]
            ],
        )
    return "\n".join(lines)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> NoReturn:
    """A terminated run unwinds like an interrupted one: the services it started stop too
    (they would otherwise live on, idle but holding memory, beside the next run)."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--sections",
        default="floor,http,breakdown,decision_log,materialise,training",
        help="comma-separated sections",
    )
    parser.add_argument(
        "--decisions", type=int, default=2000, help="floor, breakdown: decisions timed"
    )
    parser.add_argument("--seconds", type=int, default=20, help="http, breakdown: seconds per run")
    parser.add_argument(
        "--rates",
        default="100,200",
        help="http: fixed rates per second; breakdown: the top one's share of one worker",
    )
    parser.add_argument(
        "--materialise-sizes", default="100000,1000000", help="materialise: customers"
    )
    parser.add_argument("--training-sizes", default="100000,1000000", help="training: decisions")
    parser.add_argument(
        "--log-decisions", type=int, default=20000, help="decision_log: decisions written"
    )
    parser.add_argument("--log-threads", type=int, default=4, help="decision_log: threads")
    parser.add_argument("--soak-seconds", type=int, default=600, help="soak: duration")
    parser.add_argument("--soak-rate", type=float, default=200, help="soak: requests per second")
    parser.add_argument(
        "--soak-feedback-every", type=int, default=5, help="soak: decisions per feedback event"
    )
    parser.add_argument(
        "--soak-log",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="soak: decision log (postgres: a fresh database on the local server)",
    )
    parser.add_argument("--out", default="bench-results", help="folder for JSON and markdown")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    sections = set(args.sections.split(","))
    rates = [int(r) for r in args.rates.split(",")]
    profile = ServiceSettings().feature_repo / "data" / "customer_profile.parquet"
    if not profile.exists():
        raise SystemExit("no demo world: run `make demo` (or `.venv/bin/nba demo`) first")
    customers = pd.read_parquet(profile, columns=["customer_id"])["customer_id"].tolist()
    results: dict[str, Any] = {
        "machine": machine(),
        "command": " ".join(
            ["python -m tests.benchmarks", *(argv if argv is not None else sys.argv[1:])]
        ),
    }
    with tempfile.TemporaryDirectory(prefix="nba-bench-") as scratch:
        work = Path(scratch)
        catalog_path = bench_catalog(work)
        if "floor" in sections:
            results |= section_floor(customers, catalog_path, work, args.decisions)
        if "http" in sections:
            results["http"] = section_http(customers, catalog_path, work, args.seconds, rates)
        if "breakdown" in sections:
            rate = max(1, max(rates) // HTTP_WORKERS)  # one worker's share of the top rate
            results["breakdown"] = section_breakdown(
                customers, catalog_path, work, args.seconds, rate, args.decisions
            )
        if "soak" in sections:
            results["soak"] = section_soak(
                customers,
                catalog_path,
                work,
                args.soak_seconds,
                args.soak_rate,
                args.soak_feedback_every,
                args.soak_log,
            )
        if "decision_log" in sections:
            results["decision_log"] = section_decision_log(
                args.log_decisions, args.log_threads, work, log
            )
        if "materialise" in sections:
            sizes = [int(n) for n in args.materialise_sizes.split(",")]
            results["materialise"] = section_materialise(sizes, work)
        if "training" in sections:
            sizes = [int(n) for n in args.training_sizes.split(",")]
            results["training"] = section_training(sizes, work)
    results["machine"]["speed_check_end_s"] = speed_check()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (out / f"bench-{stamp}.json").write_text(json.dumps(results, indent=2))
    table = markdown(results)
    (out / f"bench-{stamp}.md").write_text(table + "\n")
    print("\n" + table)
    log(f"written to {out}/bench-{stamp}.json and .md")
    if "soak" in results and not results["soak"]["passed"]:
        raise SystemExit("soak failed: non-2xx answers, connection errors or a worker restart")
