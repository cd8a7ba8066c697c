"""The API killed with SIGKILL while feedback arrives: every acknowledged event survives.

A real `python -m service` (two workers, in its own process group) takes a few hundred
decisions, then several client threads send distinct feedback events and record which
ones were answered 202. Half way, the whole process group gets SIGKILL. The API restarts
on the same decision log, which is then read directly: every acknowledged event must be
there, and nothing that was never sent. Run against the SQLite default and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pandas as pd
import psycopg
import pytest

from tests.conftest import Stack
from tests.integration.servers import database_url, scratch_databases
from training.serving import free_port

pytestmark = pytest.mark.integration

DECISIONS = 300
EVENTS = 1600
CLIENTS = 6
OUTCOMES = ("impression", "click", "accept", "reject", "dismiss")

Event = tuple[str, str, str]  # (decision_id, action_id, outcome)


@dataclass(frozen=True)
class DecisionLogTarget:
    """Where the API keeps its decision log, and how to read the feedback table directly."""

    backend: str
    env: dict[str, str]
    sqlite_path: Path | None = None
    postgres_url: str | None = None

    def stored_feedback(self) -> set[Event]:
        """Every (decision, action, outcome) in the feedback table."""
        query = "SELECT decision_id, action_id, outcome FROM feedback"
        if self.sqlite_path is not None:
            with sqlite3.connect(self.sqlite_path) as db:
                return {(str(d), str(a), str(o)) for d, a, o in db.execute(query)}
        assert self.postgres_url is not None
        with psycopg.connect(self.postgres_url) as db:
            return {(str(d), str(a), str(o)) for d, a, o in db.execute(query)}

    def stored_decisions(self) -> set[str]:
        """Every decision ID in the log."""
        query = "SELECT decision_id FROM decisions"
        if self.sqlite_path is not None:
            with sqlite3.connect(self.sqlite_path) as db:
                return {str(row[0]) for row in db.execute(query)}
        assert self.postgres_url is not None
        with psycopg.connect(self.postgres_url) as db:
            return {str(row[0]) for row in db.execute(query)}


@pytest.fixture(scope="module")
def postgres_database() -> Iterator[str]:
    """A fresh database with a unique name on the local server, dropped afterwards."""
    with scratch_databases("nba_crash") as (name,):
        yield database_url(name)


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> DecisionLogTarget:
    path = tmp_path / "decision_log.db"
    env = {"NBA_DECISION_LOG_PATH": str(path)}
    if request.param == "sqlite":
        return DecisionLogTarget("sqlite", env, sqlite_path=path)
    url: str = request.getfixturevalue("postgres_database")
    return DecisionLogTarget("postgres", {**env, "NBA_DECISION_LOG_URL": url}, postgres_url=url)


def start_api(env: dict[str, str], cwd: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """`python -m service` as production starts it, leading a process group of its own."""
    with log_path.open("a") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "service"],
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the workers join its group: one killpg ends them all
        )


def wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    """Return once /health/ready answers 200; fail with the log if the API dies or stalls."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"API exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"API not ready in time:\n{log_path.read_text()}")


def live_members(group: int) -> list[int]:
    """PIDs of the processes of a process group that are still running (not zombies)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended while we looked
        if fields[0] != "Z" and int(fields[2]) == group:
            members.append(int(stat.parent.name))
    return members


def stop_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Send `sig` to the API's process group, reap the leader, wait for the workers to end."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    deadline = time.monotonic() + 30
    while live_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not live_members(process.pid), "API workers outlived their process group's end"


@dataclass
class Tally:
    """What the feedback clients saw, shared by their threads."""

    threshold: int
    acknowledged: set[Event] = field(default_factory=set)
    failed: set[Event] = field(default_factory=set)  # connection error: fate unknown
    unexpected: list[str] = field(default_factory=list)  # any answer other than 202
    halfway: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send_all(self, url: str, events: list[Event]) -> None:
        """Send events in order until the first connection error (the API is gone)."""
        with httpx.Client(base_url=url, timeout=30) as client:
            for decision_id, action_id, outcome in events:
                event = (decision_id, action_id, outcome)
                payload = {"decision_id": decision_id, "action_id": action_id, "outcome": outcome}
                try:
                    response = client.post("/v1/feedback", json=payload)
                except httpx.TransportError:
                    with self.lock:
                        self.failed.add(event)
                    return
                with self.lock:
                    if response.status_code == 202:
                        self.acknowledged.add(event)
                        if len(self.acknowledged) >= self.threshold:
                            self.halfway.set()
                    else:
                        self.unexpected.append(f"{response.status_code} {response.text}")


def make_decisions(url: str, customers: list[str]) -> dict[str, list[str]]:
    """One call-center decision per customer: decision ID -> its candidates' action IDs.

    Only the fields this test needs are read (the answer may carry more)."""
    made: dict[str, list[str]] = {}
    with httpx.Client(base_url=url, timeout=30) as client:
        for customer in customers:
            response = client.post(
                "/v1/decisions",
                json={"customer_id": customer, "touchpoint": "call_center", "reasons": False},
            )
            assert response.status_code == 200, response.text
            body = response.json()
            made[body["decision_id"]] = [a["action_id"] for a in body["ranked"]]
    return made


def distinct_events(decisions: dict[str, list[str]], n: int, seed: int) -> list[Event]:
    """`n` distinct (decision, candidate action, outcome) triples, in random order."""
    every = [
        (decision_id, action, outcome)
        for decision_id, actions in decisions.items()
        for action in actions
        for outcome in OUTCOMES
    ]
    assert len(every) >= n, f"only {len(every)} distinct events to send"
    return random.Random(seed).sample(every, n)


def test_acknowledged_feedback_survives_sigkill(
    stack: Stack, target: DecisionLogTarget, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **stack.env,
        **target.env,
        "NBA_HOST": "127.0.0.1",
        "NBA_PORT": str(port),
        "NBA_WORKERS": "2",
        "NBA_LOG_LEVEL": "info",  # the log is shown when the API fails to start
        "NBA_MODEL_POLL_SECONDS": "0",
        "NBA_CATALOG_RELOAD_SECONDS": "0",
        "NBA_MODEL_CACHE_DIR": str(tmp_path / "models"),  # not the session service's copy
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    (tmp_path / "metrics").mkdir()  # it must exist before the service imports its metrics
    log_path = tmp_path / "api.log"
    profile = pd.read_parquet(stack.feature_repo / "data" / "customer_profile.parquet")
    customers = sorted(profile["customer_id"])[:DECISIONS]

    process = start_api(env, stack.root, log_path)
    try:
        wait_ready(url, process, log_path)
        decisions = make_decisions(url, customers)
        events = distinct_events(decisions, EVENTS, seed=len(target.backend))
        tally = Tally(threshold=EVENTS // 2)
        senders = [
            threading.Thread(target=tally.send_all, args=(url, events[i::CLIENTS]), daemon=True)
            for i in range(CLIENTS)
        ]
        for sender in senders:
            sender.start()
        assert tally.halfway.wait(timeout=300), "feedback never reached half way"
        stop_group(process, signal.SIGKILL)
        for sender in senders:
            sender.join(timeout=60)
        assert not any(sender.is_alive() for sender in senders)
    finally:
        if process.returncode is None:
            stop_group(process, signal.SIGKILL)

    with tally.lock:
        acknowledged, failed, unexpected = (
            set(tally.acknowledged),
            set(tally.failed),
            tally.unexpected,
        )
    assert not unexpected, unexpected[:5]
    assert failed, "the kill did not interrupt any client"
    assert len(acknowledged) < EVENTS, "every event was answered before the kill"

    restarted = start_api(env, stack.root, log_path)
    try:
        wait_ready(url, restarted, log_path)
        stored = target.stored_feedback()
        assert set(decisions) <= target.stored_decisions()
        lost = acknowledged - stored
        phantom = stored - acknowledged - failed
        print(
            f"\ncrash durability [{target.backend}]: {len(decisions)} decisions, "
            f"{EVENTS} feedback events from {CLIENTS} clients; SIGKILL after "
            f"{tally.threshold} acknowledgements: acknowledged {len(acknowledged)}, "
            f"connection errors {len(failed)}, never sent "
            f"{EVENTS - len(acknowledged) - len(failed)}, stored after restart {len(stored)} "
            f"({len(stored & failed)} of the errored ones), lost {len(lost)}"
        )
        assert not lost, f"{len(lost)} acknowledged events lost, e.g. {sorted(lost)[:3]}"
        assert not phantom, f"events stored that were never sent: {sorted(phantom)[:3]}"

        with httpx.Client(base_url=url, timeout=30) as client:

            def send(event: Event) -> httpx.Response:
                payload = dict(zip(("decision_id", "action_id", "outcome"), event, strict=True))
                return client.post("/v1/feedback", json=payload)

            replay = send(sorted(acknowledged)[0])
            assert (replay.status_code, replay.json()["status"]) == (202, "duplicate")
            unsent = sorted(set(events) - acknowledged - failed)
            fresh = send(unsent[0])
            assert (fresh.status_code, fresh.json()["status"]) == (202, "recorded")
            for event in failed:  # a client retrying after the error: stored exactly once
                retry = send(event)
                assert retry.status_code == 202
                expected = "duplicate" if event in stored else "recorded"
                assert retry.json()["status"] == expected
        assert target.stored_feedback() == stored | failed | {unsent[0]}
    finally:
        if restarted.returncode is None:
            stop_group(restarted, signal.SIGTERM)
