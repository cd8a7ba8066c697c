"""The decision log on PostgreSQL, for several service processes sharing one log.

Same interface and semantics as the SQLite default. A customer session takes a
transaction-scoped advisory lock on the customer, so caps hold across processes and
machines; feedback commits with the server's synchronous commit before the API answers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pandas as pd
import psycopg
from psycopg_pool import ConnectionPool

from service.decision_log import (
    AUDIT_QUERY,
    DECISION_LOCK_SECONDS,
    ERASE_DECISIONS,
    INSERT_AUDIT,
    SHADOW_QUERY,
    VOID_DECISION,
    VOID_SHADOW,
    AuditEntry,
    CustomerSession,
    Outcome,
    SqlSession,
    audit_values,
    erased_pseudonym,
)
from service.errors import ActionNotInDecisionError, DecisionLogError, UnknownDecisionError
from service.urls import redact

SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    decision_id TEXT PRIMARY KEY,
    created_at DOUBLE PRECISION NOT NULL,
    customer_id TEXT NOT NULL,
    touchpoint TEXT NOT NULL,
    model_name TEXT NOT NULL,
    model_version TEXT NOT NULL,
    personalised BOOLEAN NOT NULL,
    chosen_action TEXT NOT NULL,
    selection_probability DOUBLE PRECISION NOT NULL,
    explored BOOLEAN NOT NULL,
    candidates JSONB NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_customer_time ON decisions (customer_id, created_at);
CREATE TABLE IF NOT EXISTS feedback (
    decision_id TEXT NOT NULL REFERENCES decisions (decision_id),
    action_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (decision_id, action_id, outcome)
);
CREATE TABLE IF NOT EXISTS shadow_decisions (
    decision_id TEXT PRIMARY KEY REFERENCES decisions (decision_id),
    model_version TEXT NOT NULL,
    chosen_action TEXT NOT NULL,
    candidates JSONB NOT NULL
);
CREATE TABLE IF NOT EXISTS admin_audit (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at DOUBLE PRECISION NOT NULL,
    caller TEXT NOT NULL,
    action TEXT NOT NULL,
    request_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    subject TEXT
);
"""


POOL_TIMEOUT_SECONDS = 3.0  # longest wait for a pooled connection (busy pool or server down)
CONNECT_TIMEOUT_SECONDS = 3  # libpq connect_timeout: an unreachable host fails within 3 s
SCHEMA_LOCK = 0x6E62615F736368  # advisory lock key serialising the schema creation
# Per-session server settings: a request waits at most 2 s for a customer's lock (held by a
# stuck or half-dead session after a network fault) and then fails like an outage instead
# of hanging; the server ends a session left idle inside a transaction after 10 s and checks
# every second that the client of a running query is still there, so a lock dies with its
# client (PostgreSQL 14 or newer).
# A server that vanished without a reset (host down, packets dropped) is noticed within
# seconds instead of the kernel's minutes: unacknowledged data for 5 s or 3 keepalive probes
# unanswered after 5 s idle end the connection, and the request fails over like an outage.
TCP_TIMEOUTS = {
    "tcp_user_timeout": 5000,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
}
SESSION_OPTIONS = (
    f"-c lock_timeout={round(DECISION_LOCK_SECONDS * 1000)} "
    "-c idle_in_transaction_session_timeout=10000 "
    "-c client_connection_check_interval=1000"
)


class PostgresDecisionLog:
    """A pooled PostgreSQL decision log (`NBA_DECISION_LOG_URL=postgresql://...`)."""

    def __init__(self, url: str, pool_size: int = 8) -> None:
        try:
            self._pool = ConnectionPool(
                url,
                min_size=1,
                max_size=pool_size,
                open=True,
                timeout=POOL_TIMEOUT_SECONDS,
                kwargs={
                    "autocommit": False,
                    "connect_timeout": CONNECT_TIMEOUT_SECONDS,
                    "options": SESSION_OPTIONS,
                    **TCP_TIMEOUTS,
                },
            )
            with self._pool.connection() as connection, connection.transaction():
                # CREATE ... IF NOT EXISTS fails when another process creates the same table
                # at the same moment (workers and replicas starting on a fresh database)
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                connection.execute(SCHEMA)
        except (psycopg.Error, OSError) as exc:
            raise DecisionLogError(f"cannot open the decision log at {redact(url)}: {exc}") from exc

    @contextmanager
    def customer_session(self, customer_id: str) -> Iterator[CustomerSession]:
        """Read history and append one decision atomically for this customer."""
        try:
            with self._pool.connection() as connection, connection.transaction():
                connection.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (customer_id,)
                )
                yield SqlSession(connection, customer_id, placeholder="%s", flag=bool)
        except psycopg.Error as exc:
            raise DecisionLogError(f"decision log unavailable: {exc}") from exc

    def record_feedback(
        self, decision_id: str, action_id: str, outcome: Outcome, at: float
    ) -> bool:
        """Store feedback durably; True when new, False when it was already recorded."""
        try:
            with self._pool.connection() as connection, connection.transaction():
                row = connection.execute(
                    "SELECT candidates FROM decisions WHERE decision_id = %s", (decision_id,)
                ).fetchone()
                if row is None:
                    raise UnknownDecisionError(f"no decision with id {decision_id}")
                if action_id not in {c[0] for c in row[0]}:
                    raise ActionNotInDecisionError(
                        f"action '{action_id}' was not a candidate of decision {decision_id}"
                    )
                cursor = connection.execute(
                    "INSERT INTO feedback VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (decision_id, action_id, outcome.value, at),
                )
                return cursor.rowcount == 1
        except psycopg.Error as exc:
            raise DecisionLogError(f"feedback write failed: {exc}") from exc

    def decisions_frame(self) -> pd.DataFrame:
        """All decisions with their outcomes, one row per decision (for training)."""
        with self._pool.connection() as connection:
            cursor = connection.execute(
                "SELECT d.decision_id, d.created_at, d.customer_id, d.touchpoint, d.model_name, "
                "d.model_version, d.personalised::int, d.chosen_action, d.selection_probability, "
                "d.explored::int, d.candidates::text, "
                "MAX(CASE WHEN f.outcome = 'accept' AND f.action_id = d.chosen_action "
                "THEN 1 ELSE 0 END) AS accepted "
                "FROM decisions d LEFT JOIN feedback f ON f.decision_id = d.decision_id "
                "GROUP BY d.decision_id ORDER BY d.created_at"
            )
            columns = [c.name for c in cursor.description or []]
            return pd.DataFrame(cursor.fetchall(), columns=columns)

    def shadow_frame(self) -> pd.DataFrame:
        """Served and shadow choices side by side, one row per shadow-scored decision."""
        with self._pool.connection() as connection:
            cursor = connection.execute(SHADOW_QUERY)
            columns = [c.name for c in cursor.description or []]
            return pd.DataFrame(cursor.fetchall(), columns=columns)

    def erase_customer(self, customer_id: str) -> int:
        """Replace the customer's ID in their decisions by a fresh pseudonym, in one
        transaction under the customer's lock (a session in flight finishes first); the
        number of decisions changed."""
        try:
            with self._pool.connection() as connection, connection.transaction():
                connection.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (customer_id,)
                )
                cursor = connection.execute(
                    ERASE_DECISIONS.replace("?", "%s"), (erased_pseudonym(), customer_id)
                )
                return cursor.rowcount
        except psycopg.Error as exc:
            raise DecisionLogError(f"decision log erasure failed: {exc}") from exc

    def void_decisions(self, decision_ids: Sequence[str]) -> int:
        """Delete decisions that were never answered as logged (their commit was in doubt);
        the number deleted."""
        try:
            with self._pool.connection() as connection, connection.transaction():
                cursor = connection.cursor()
                params = [(i,) for i in decision_ids]
                cursor.executemany(VOID_SHADOW.replace("?", "%s"), params)
                cursor.executemany(VOID_DECISION.replace("?", "%s"), params)
                return cursor.rowcount  # psycopg sums it over executemany
        except psycopg.Error as exc:
            raise DecisionLogError(f"voiding decisions failed: {exc}") from exc

    def record_audit(self, entry: AuditEntry) -> None:
        """Append an admin action to `admin_audit`."""
        try:
            with self._pool.connection() as connection, connection.transaction():
                connection.execute(INSERT_AUDIT.replace("?", "%s"), audit_values(entry))
        except psycopg.Error as exc:
            raise DecisionLogError(f"audit write failed: {exc}") from exc

    def audit_frame(self) -> pd.DataFrame:
        """The admin audit log, oldest first."""
        with self._pool.connection() as connection:
            cursor = connection.execute(AUDIT_QUERY)
            columns = [c.name for c in cursor.description or []]
            return pd.DataFrame(cursor.fetchall(), columns=columns)

    def close(self) -> None:
        """Close the pool."""
        self._pool.close()
