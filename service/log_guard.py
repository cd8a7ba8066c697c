"""The decision log behind a circuit breaker, so an outage of its database costs no waiting,
and with the clean-up of decisions whose commit was in doubt."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pandas as pd

from service.breaker import CircuitBreaker
from service.decision_log import (
    AuditEntry,
    ContactHistory,
    CustomerSession,
    DecisionLog,
    DecisionRecord,
    Outcome,
)
from service.errors import DecisionLogError

logger = logging.getLogger(__name__)

MAX_IN_DOUBT = 10_000  # decisions remembered for voiding; any beyond stay in the log


class _RecordingSession:
    """A customer session that notes the IDs it appended."""

    def __init__(self, inner: CustomerSession) -> None:
        self._inner = inner
        self.appended: list[str] = []

    def history(self, since: float) -> ContactHistory:
        return self._inner.history(since)

    def append(self, record: DecisionRecord) -> None:
        self._inner.append(record)
        self.appended.append(record.decision_id)


class GuardedDecisionLog:
    """Any `DecisionLog`, failing fast with `DecisionLogError` for a second after it failed.

    Only the log's own failures open the breaker; an unknown decision in feedback or an
    error of the caller inside a customer session does not.

    A session that appended and then failed may still have committed: the connection can
    die after the server took the COMMIT and before its answer came back. The engine
    answers such a decision as unlogged under a fresh ID, and its appended decisions are
    voided (deleted) here at the first session after the log is back, so the log never
    holds a contact the customer was not shown.
    """

    def __init__(self, inner: DecisionLog, breaker: CircuitBreaker | None = None) -> None:
        self.inner = inner
        self.breaker = breaker or CircuitBreaker("decision_log", DecisionLogError)
        self._in_doubt: list[str] = []
        self._in_doubt_lock = threading.Lock()

    @contextmanager
    def customer_session(self, customer_id: str) -> Iterator[CustomerSession]:
        """The inner log's customer session, unless the log is failing."""
        self.breaker.check()
        recording: _RecordingSession | None = None
        try:
            self._void_in_doubt()
            with self.inner.customer_session(customer_id) as session:
                recording = _RecordingSession(session)
                yield recording
        except DecisionLogError as exc:
            self.breaker.failure(exc.message)
            if recording is not None:
                self._remember_in_doubt(recording.appended)
            raise
        self.breaker.success()

    @property
    def in_doubt(self) -> int:
        """How many decisions wait to be voided."""
        return len(self._in_doubt)

    def _remember_in_doubt(self, decision_ids: Sequence[str]) -> None:
        with self._in_doubt_lock:
            room = max(0, MAX_IN_DOUBT - len(self._in_doubt))
            self._in_doubt.extend(decision_ids[:room])
        if len(decision_ids) > room:
            logger.warning(
                "more than %d decisions in doubt; %d stay in the log unvoided",
                MAX_IN_DOUBT,
                len(decision_ids) - room,
            )

    def _void_in_doubt(self) -> None:
        if not self._in_doubt:
            return
        with self._in_doubt_lock:
            decision_ids, self._in_doubt = self._in_doubt, []
        try:
            voided = self.inner.void_decisions(decision_ids)
        except DecisionLogError:
            self._remember_in_doubt(decision_ids)
            raise
        logger.info(
            "voided %d of %d decisions whose commit was in doubt", voided, len(decision_ids)
        )

    def record_feedback(
        self, decision_id: str, action_id: str, outcome: Outcome, at: float
    ) -> bool:
        """Store feedback durably (see `DecisionLog.record_feedback`), unless the log is
        failing."""
        self.breaker.check()
        try:
            created = self.inner.record_feedback(decision_id, action_id, outcome, at)
        except DecisionLogError as exc:
            self.breaker.failure(exc.message)
            raise
        self.breaker.success()
        return created

    def decisions_frame(self) -> pd.DataFrame:
        """All decisions with their outcomes (for training)."""
        return self.inner.decisions_frame()

    def shadow_frame(self) -> pd.DataFrame:
        """Served and shadow choices side by side."""
        return self.inner.shadow_frame()

    # Erasure and the admin audit log (customer erasure, issue 8): passed through, and
    # counted by the breaker like the other writes.

    def erase_customer(self, customer_id: str) -> int:
        """Pseudonymise the customer's decisions (see `DecisionLog.erase_customer`)."""
        self.breaker.check()
        try:
            changed = self.inner.erase_customer(customer_id)
        except DecisionLogError as exc:
            self.breaker.failure(exc.message)
            raise
        self.breaker.success()
        return changed

    def void_decisions(self, decision_ids: Sequence[str]) -> int:
        """Delete decisions never answered as logged (see `DecisionLog.void_decisions`)."""
        return self.inner.void_decisions(decision_ids)

    def record_audit(self, entry: AuditEntry) -> None:
        """Append an admin action to the audit log."""
        self.breaker.check()
        try:
            self.inner.record_audit(entry)
        except DecisionLogError as exc:
            self.breaker.failure(exc.message)
            raise
        self.breaker.success()

    def audit_frame(self) -> pd.DataFrame:
        """The admin audit log, oldest first."""
        return self.inner.audit_frame()

    def close(self) -> None:
        """Close the inner log."""
        self.inner.close()
