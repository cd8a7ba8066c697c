"""One contract, two decision logs: SQLite (default) and PostgreSQL (the real local server)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import SupportsInt, cast

import psycopg
import pytest

from service.catalog import Catalog
from service.decision_log import (
    DECISION_LOCK_SECONDS,
    AuditEntry,
    ContactHistory,
    DecisionLog,
    DecisionRecord,
    LoggedCandidate,
    Outcome,
    ShadowRecord,
    SqliteDecisionLog,
)
from service.decision_log_postgres import PostgresDecisionLog
from service.errors import ActionNotInDecisionError, DecisionLogError, UnknownDecisionError
from service.file_lock import FileLock
from service.model import LoadedModel
from service.runtime import open_decision_log
from service.settings import ServiceSettings
from service.vocabulary import Touchpoint
from tests.integration.servers import database_url, scratch_databases
from tests.unit.engine_kit import CALM_CUSTOMER, make_kit
from training.logs import read_service_log

pytestmark = pytest.mark.integration


Opener = Callable[[], DecisionLog]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A fresh database on the local PostgreSQL server, dropped afterwards."""
    with scratch_databases("nba_test") as (name,):
        yield database_url(name)


@pytest.fixture(params=["sqlite", "postgres"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    opened: list[DecisionLog] = []
    if request.param == "sqlite":

        def open_log() -> DecisionLog:
            opened.append(SqliteDecisionLog(tmp_path / "log.db"))
            return opened[-1]
    else:
        url = request.getfixturevalue("postgres_url")
        schema_reset = psycopg.connect(url, autocommit=True)
        schema_reset.execute(
            "DROP TABLE IF EXISTS admin_audit, shadow_decisions, feedback, decisions"
        )
        schema_reset.close()

        def open_log() -> DecisionLog:
            opened.append(PostgresDecisionLog(url))
            return opened[-1]

    yield open_log
    for log in opened:
        log.close()


def record(
    customer: str,
    action: str,
    at: float,
    candidates: tuple[str, ...] = ("card", "loan", "no_action"),
) -> DecisionRecord:
    return DecisionRecord(
        decision_id=str(uuid.uuid4()),
        created_at=at,
        customer_id=customer,
        touchpoint="web",
        model_name="m",
        model_version="1",
        personalised=True,
        chosen_action=action,
        selection_probability=0.9,
        explored=False,
        candidates=tuple(LoggedCandidate(c, 0.1, 1.0) for c in candidates),
    )


def test_history_counts_shown_actions_in_the_window(opener: Opener) -> None:
    log = opener()
    for action, at in (("card", 100.0), ("no_action", 150.0), ("loan", 200.0), ("card", 300.0)):
        with log.customer_session("c") as session:
            session.append(record("c", action, at))
    with log.customer_session("other") as session:
        session.append(record("other", "card", 250.0))
    with log.customer_session("c") as session:
        history = session.history(since=150.0)
    assert sorted(history.shown) == [("card", 300.0), ("loan", 200.0)]
    assert history.rejected == ()


def test_feedback_is_idempotent_validated_and_read_as_rejections(opener: Opener) -> None:
    log = opener()
    decision = record("c", "card", 100.0)
    with log.customer_session("c") as session:
        session.append(decision)
    assert log.record_feedback(decision.decision_id, "card", Outcome.REJECT, 110.0) is True
    assert log.record_feedback(decision.decision_id, "card", Outcome.REJECT, 111.0) is False
    assert log.record_feedback(decision.decision_id, "loan", Outcome.ACCEPT, 112.0) is True
    with pytest.raises(UnknownDecisionError):
        log.record_feedback(str(uuid.uuid4()), "card", Outcome.ACCEPT, 1.0)
    with pytest.raises(ActionNotInDecisionError):
        log.record_feedback(decision.decision_id, "mortgage", Outcome.ACCEPT, 1.0)
    with log.customer_session("c") as session:
        assert session.history(since=0.0).rejected == (("card", 110.0),)
    frame = log.decisions_frame()
    assert len(frame) == 1 and int(frame["accepted"].iloc[0]) == 0


def test_shadow_choices_are_kept_beside_the_served_ones(opener: Opener) -> None:
    log = opener()
    served = record("c", "card", 100.0)
    shadow = ShadowRecord("2", "loan", (LoggedCandidate("loan", 0.3, 2.0),))
    with log.customer_session("c") as session:
        session.append(dataclasses.replace(served, shadow=shadow))
        session.append(record("c", "no_action", 101.0))
    frame = log.shadow_frame()
    columns = ["served_version", "served_action", "shadow_version", "shadow_action"]
    assert frame[columns].values.tolist() == [["1", "card", "2", "loan"]]


def test_voiding_deletes_decisions_and_their_shadows_but_never_one_with_feedback(
    opener: Opener,
) -> None:
    log = opener()
    shadow = ShadowRecord("2", "loan", (LoggedCandidate("loan", 0.3, 2.0),))
    in_doubt = dataclasses.replace(record("c", "card", 100.0), shadow=shadow)
    answered = record("c", "card", 101.0)
    kept = record("c", "loan", 102.0)
    with log.customer_session("c") as session:
        for decision in (in_doubt, answered, kept):
            session.append(decision)
    log.record_feedback(answered.decision_id, "card", Outcome.IMPRESSION, 103.0)
    voided = log.void_decisions([in_doubt.decision_id, answered.decision_id, "unknown"])
    assert voided == 1
    assert sorted(log.decisions_frame()["decision_id"]) == sorted(
        [answered.decision_id, kept.decision_id]
    )
    assert len(log.shadow_frame()) == 0


def test_a_failed_session_writes_nothing(opener: Opener) -> None:
    log = opener()
    with pytest.raises(RuntimeError), log.customer_session("c") as session:
        session.append(record("c", "card", 1.0))
        raise RuntimeError("arbitration failed")
    assert len(log.decisions_frame()) == 0


def test_sessions_for_one_customer_never_interleave(opener: Opener) -> None:
    """Read-count-then-append from two logs (two connections, as two processes) and 16
    threads: a cap of 3 holds only if the sessions are serialised per customer."""
    logs = [opener(), opener()]

    def try_contact(i: int) -> bool:
        with logs[i % 2].customer_session("c") as session:
            if len(session.history(since=0.0).shown) >= 3:
                return False
            session.append(record("c", "card", float(i)))
            return True

    with ThreadPoolExecutor(max_workers=16) as pool:
        shown = sum(pool.map(try_contact, range(40)))
    assert shown == 3
    assert len(logs[0].decisions_frame()) == 3


def test_engine_caps_hold_on_postgres_under_concurrency(
    postgres_url: str, catalog: Catalog, model: LoadedModel, tmp_path: Path
) -> None:
    raw = catalog.model_dump(mode="json")
    raw["policy"]["customer_contact_cap"] = {"max_count": 2, "window_days": 7}
    capped = Catalog.model_validate(raw)
    logs = [PostgresDecisionLog(postgres_url), PostgresDecisionLog(postgres_url)]
    customer = f"pg-{uuid.uuid4().hex[:8]}"
    kits = [
        make_kit(capped, model, tmp_path / "unused.db", {customer: CALM_CUSTOMER}, log=log)
        for log in logs
    ]
    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(
            pool.map(
                lambda i: kits[i % 2].engine.decide(customer, Touchpoint.CALL_CENTER), range(30)
            )
        )
    assert sum(r.chosen.action.id != "no_action" for r in results) == 2
    for log in logs:
        log.close()


def test_a_customer_locked_by_a_stuck_session_fails_fast_on_postgres(postgres_url: str) -> None:
    """A session that holds a customer's lock and never finishes (its client half-dead
    after a network fault) makes the next request for that customer fail after the lock
    timeout, as an outage, instead of hanging a worker thread."""
    log = PostgresDecisionLog(postgres_url)
    locked, other = f"locked-{uuid.uuid4().hex[:8]}", f"other-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url) as stuck:
        stuck.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (locked,))
        with pytest.raises(DecisionLogError, match="lock timeout"), log.customer_session(locked):
            pass
        with log.customer_session(other) as session:  # other customers are not blocked
            session.append(record(other, "card", 1.0))
        stuck.rollback()
    with log.customer_session(locked) as session:
        session.append(record(locked, "card", 2.0))
    frame = log.decisions_frame()
    assert frame["customer_id"].isin([locked, other]).sum() == 2
    log.close()


def test_a_decision_behind_a_stuck_sqlite_writer_fails_after_the_lock_timeout(
    tmp_path: Path,
) -> None:
    """A writer that holds the SQLite log's file lock and never lets go (another process
    stuck mid-write) makes a decision fail after `DECISION_LOCK_SECONDS`, as an outage: the
    decision runs on the worker's event loop, which must not wait as long as feedback may."""
    log = SqliteDecisionLog(tmp_path / "log.db")
    stuck = FileLock(tmp_path / "log.db.lock")
    with (
        stuck.held(),
        pytest.raises(DecisionLogError, match=f"for {DECISION_LOCK_SECONDS:g} s"),
        log.customer_session("C1"),
    ):
        pass
    with log.customer_session("C1") as session:  # free again once the writer lets go
        session.append(record("C1", "card", 1.0))
    assert len(log.decisions_frame()) == 1
    stuck.close()
    log.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_training_reads_the_service_log(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if backend == "postgres":
        url = request.getfixturevalue("postgres_url")
        reset = psycopg.connect(url, autocommit=True)
        reset.execute("DROP TABLE IF EXISTS admin_audit, shadow_decisions, feedback, decisions")
        reset.close()
        settings = ServiceSettings(decision_log_url=url)
    else:
        settings = ServiceSettings(decision_log_path=tmp_path / "log.db")
    log = open_decision_log(settings)
    accepted, ignored = record("a", "card", 1_790_000_000.5), record("b", "loan", 1_790_000_100.0)
    anonymous = record("x", "card", 1_790_000_200.0)
    anonymous = DecisionRecord(**{**anonymous.__dict__, "personalised": False})
    for item in (accepted, ignored, anonymous):
        with log.customer_session(item.customer_id) as session:
            session.append(item)
    log.record_feedback(accepted.decision_id, "card", Outcome.ACCEPT, 1_790_000_010.0)
    log.record_feedback(ignored.decision_id, "loan", Outcome.IMPRESSION, 1_790_000_110.0)
    log.close()
    frame = read_service_log(settings)
    assert list(frame["decision_id"]) == [accepted.decision_id, ignored.decision_id]
    assert list(frame["outcome"]) == [1, 0]
    assert list(frame["propensity"]) == [0.9, 0.9]
    assert str(frame["event_timestamp"].dt.tz) == "UTC"


def test_erasure_pseudonymises_the_customer_in_one_token(opener: Opener) -> None:
    log = opener()
    first, second, other = (
        record("c", "card", 100.0),
        record("c", "loan", 200.0),
        record("o", "card", 150.0),
    )
    shadow = ShadowRecord("2", "loan", (LoggedCandidate("loan", 0.3, 2.0),))
    with log.customer_session("c") as session:
        session.append(dataclasses.replace(first, shadow=shadow))
        session.append(second)
    with log.customer_session("o") as session:
        session.append(other)
    log.record_feedback(first.decision_id, "card", Outcome.ACCEPT, 110.0)
    log.record_feedback(second.decision_id, "loan", Outcome.REJECT, 210.0)

    assert log.erase_customer("c") == 2
    frame = log.decisions_frame().set_index("decision_id")
    assert "c" not in set(frame["customer_id"])
    pseudonyms = set(frame.loc[[first.decision_id, second.decision_id], "customer_id"])
    assert len(pseudonyms) == 1, "one pseudonym per erasure keeps the customer's rows together"
    (pseudonym,) = pseudonyms
    assert pseudonym.startswith("erased:") and len(pseudonym) == len("erased:") + 32
    assert frame.loc[other.decision_id, "customer_id"] == "o"
    accepted = cast(SupportsInt, frame.loc[first.decision_id, "accepted"])  # one cell: a number
    assert int(accepted) == 1, "outcomes still count"
    assert len(log.shadow_frame()) == 1
    with log.customer_session("c") as session:
        assert session.history(since=0.0) == ContactHistory((), ())
    assert log.record_feedback(second.decision_id, "loan", Outcome.IMPRESSION, 220.0) is True

    assert log.erase_customer("c") == 0, "erasing again changes nothing"
    assert log.erase_customer("never-seen") == 0
    assert log.erase_customer("o") == 1
    again = log.decisions_frame().set_index("decision_id")
    assert again.loc[other.decision_id, "customer_id"] not in {"o", pseudonym}
    assert set(again.loc[[first.decision_id, second.decision_id], "customer_id"]) == pseudonyms


def test_audit_entries_are_appended_and_read_in_order(opener: Opener) -> None:
    log = opener()
    assert log.audit_frame().empty
    entries = [
        AuditEntry(1_790_000_000.25, "ops", "erase_customer", "req-1", "ok", "ab" * 32),
        AuditEntry(1_790_000_001.0, "web", "reload_models", "req-2", "scope_missing", None),
    ]
    for entry in entries:
        log.record_audit(entry)
    frame = log.audit_frame()
    assert list(frame.columns) == ["at", "caller", "action", "request_id", "outcome", "subject"]
    rows = [
        tuple(None if isinstance(v, float) and v != v else v for v in row)
        for row in frame.itertuples(index=False)
    ]
    assert rows == [dataclasses.astuple(e) for e in entries]
    reopened = opener()  # another process sees the same log
    assert len(reopened.audit_frame()) == 2


def test_sqlite_erasure_leaves_no_copy_of_the_id_in_the_files(tmp_path: Path) -> None:
    """The database file and its write-ahead log, read as bytes, after an erasure."""
    log = SqliteDecisionLog(tmp_path / "log.db")
    customer = "C-erase-me-0042"
    for at in range(50):
        with log.customer_session(customer) as session:
            session.append(record(customer, "card", float(at)))

    def copies() -> int:
        return sum(p.read_bytes().count(customer.encode()) for p in tmp_path.iterdir())

    assert copies() > 0
    assert log.erase_customer(customer) == 50
    assert copies() == 0
    log.close()
