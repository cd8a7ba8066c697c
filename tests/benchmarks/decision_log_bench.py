"""Decision-log write throughput: what one decision and one feedback event cost the log.

Each decision is what the engine does per request: a customer session (on PostgreSQL a
transaction with the customer's advisory lock), the contact history read, and the append
of the decision with 25 candidates. Threads write for distinct customers at once, as the
API's workers do. Feedback events commit one by one, as `POST /v1/feedback` does. Also
reports the bytes each decision and its feedback event take on disk (tables and indexes;
on SQLite the database file with its WAL), for the capacity model
in docs/scaling.md.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from service.decision_log import (
    DecisionLog,
    DecisionRecord,
    LoggedCandidate,
    Outcome,
    SqliteDecisionLog,
)
from service.decision_log_postgres import PostgresDecisionLog

POSTGRES = os.environ.get("NBA_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
CANDIDATES = 25
LOOKBACK_SECONDS = 30 * 86400


def _record(customer_id: str, now: float) -> DecisionRecord:
    candidates = tuple(
        LoggedCandidate(f"action_{i:02d}", 0.01 * i, 1.5 * i) for i in range(CANDIDATES)
    )
    return DecisionRecord(
        decision_id=str(uuid.uuid4()),
        created_at=now,
        customer_id=customer_id,
        touchpoint="call_center",
        model_name="nba-propensity",
        model_version="1",
        personalised=True,
        chosen_action="action_07",
        selection_probability=0.95,
        explored=False,
        candidates=candidates,
    )


def _run_threads(
    threads: int, per_thread: int, work: Callable[[int, int], None]
) -> tuple[float, list[float]]:
    """Run `work(thread, i)` `per_thread` times on each thread; wall seconds and the
    latency of every call in ms."""
    latencies: list[list[float]] = [[] for _ in range(threads)]

    def loop(t: int) -> None:
        for i in range(per_thread):
            started = time.perf_counter()
            work(t, i)
            latencies[t].append((time.perf_counter() - started) * 1000)

    workers = [threading.Thread(target=loop, args=(t,)) for t in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started, [x for part in latencies for x in part]


def measure_log(log: DecisionLog, decisions: int, threads: int, customers: int) -> dict[str, Any]:
    """Decisions (session + history + append) and then feedback events, timed."""
    per_thread = decisions // threads
    ids: list[list[str]] = [[] for _ in range(threads)]

    def decide(t: int, i: int) -> None:
        customer = f"B{(t * per_thread + i) % customers:07d}"
        now = time.time()
        with log.customer_session(customer) as session:
            session.history(now - LOOKBACK_SECONDS)
            record = _record(customer, now)
            session.append(record)
        ids[t].append(record.decision_id)

    wall, latencies = _run_threads(threads, per_thread, decide)

    def feedback(t: int, i: int) -> None:
        log.record_feedback(ids[t][i], "action_07", Outcome.IMPRESSION, time.time())

    feedback_wall, feedback_latencies = _run_threads(threads, per_thread, feedback)
    written = per_thread * threads
    return {
        "decisions": written,
        "threads": threads,
        "decisions_per_s": round(written / wall, 1),
        "decision_p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "decision_p99_ms": round(float(np.percentile(latencies, 99)), 2),
        "feedback_per_s": round(written / feedback_wall, 1),
        "feedback_p50_ms": round(float(np.percentile(feedback_latencies, 50)), 2),
        "feedback_p99_ms": round(float(np.percentile(feedback_latencies, 99)), 2),
    }


@contextmanager
def scratch_postgres() -> Iterator[str]:
    """A fresh database on the local server, dropped afterwards."""
    name = f"nba_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES, autocommit=True, connect_timeout=3) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield POSTGRES.rsplit("/", 1)[0] + f"/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _postgres_bytes(url: str) -> int:
    with psycopg.connect(url) as connection:
        size = connection.execute(
            "SELECT pg_total_relation_size('decisions') + pg_total_relation_size('feedback')"
        ).fetchone()
    assert size is not None
    return int(size[0])


def section_decision_log(
    decisions: int, threads: int, work: Path, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    """Write throughput of the SQLite and the PostgreSQL decision log, and bytes per
    decision stored."""
    customers = max(decisions // 4, 1)  # a few decisions per customer, so history has rows
    path = work / "bench-log.db"
    rows = []
    with scratch_postgres() as url:
        backends: list[tuple[str, Callable[[], DecisionLog], Callable[[], int]]] = [
            (
                "sqlite",
                lambda: SqliteDecisionLog(path),
                lambda: sum(p.stat().st_size for p in work.glob("bench-log.db*")),
            ),
            ("postgres", lambda: PostgresDecisionLog(url), lambda: _postgres_bytes(url)),
        ]
        for backend, open_log, stored_bytes in backends:
            log(f"decision log: {backend}, {decisions:,} decisions on {threads} threads")
            opened = open_log()
            try:
                row = measure_log(opened, decisions, threads, customers)
            finally:
                opened.close()
            rows.append(
                {"backend": backend, **row, "bytes_per_decision": round(stored_bytes() / decisions)}
            )
    for r in rows:
        log(
            f"  {r['backend']}: {r['decisions_per_s']:,} decisions/s "
            f"(p50 {r['decision_p50_ms']} ms, p99 {r['decision_p99_ms']} ms), "
            f"{r['feedback_per_s']:,} feedback/s, {r['bytes_per_decision']} bytes/decision"
        )
    return rows
