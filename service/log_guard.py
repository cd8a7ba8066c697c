"""The decision log behind a circuit breaker, so an outage of its database costs no waiting."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd

from service.breaker import CircuitBreaker
from service.decision_log import AuditEntry, CustomerSession, DecisionLog, Outcome
from service.errors import DecisionLogError


class GuardedDecisionLog:
    """Any `DecisionLog`, failing fast with `DecisionLogError` for a second after it failed.

    Only the log's own failures open the breaker; an unknown decision in feedback or an
    error of the caller inside a customer session does not.
    """

    def __init__(self, inner: DecisionLog, breaker: CircuitBreaker | None = None) -> None:
        self.inner = inner
        self.breaker = breaker or CircuitBreaker("decision_log", DecisionLogError)

    @contextmanager
    def customer_session(self, customer_id: str) -> Iterator[CustomerSession]:
        """The inner log's customer session, unless the log is failing."""
        self.breaker.check()
        try:
            with self.inner.customer_session(customer_id) as session:
                yield session
        except DecisionLogError as exc:
            self.breaker.failure(exc.message)
            raise
        self.breaker.success()

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
