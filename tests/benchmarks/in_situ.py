"""`python -m tests.benchmarks.in_situ`: the API with a timer around each step of a decision,
for the benchmark's `breakdown` section.

The app is the service's own (`create_app` with the settings from `NBA_*` variables), served
by uvicorn with one worker. In this process only, the engine's steps are wrapped in timers;
the service's code is unchanged. Three routes outside the API drive it:

- `POST /_bench/reset` forgets the samples so far (after a warm-up);
- `POST /_bench/tight?decisions=N&customers=M&touchpoint=T` runs N decisions (reasons off)
  back to back on the event loop, as the in-process floor does (no idle gap between them),
  into a separate set;
- `GET /_bench/steps` returns each step's p50, p95, p99 and mean in microseconds, for the
  requests served since the reset (`served`) and for the back-to-back decisions (`tight`).

Any other path under `/_bench/` answers 404. The same step costs more when it is served
than in a tight loop: this puts both figures side by side for every step. With a
challenger in shadow mode, `_score` runs twice per decision and gives two samples each.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any
from urllib.parse import parse_qs

import uvicorn

from service import routes
from service.app import create_app
from service.engine import DecisionEngine
from service.feature_client import OnlineFeatures
from service.log_guard import GuardedDecisionLog
from service.settings import ServiceSettings
from service.vocabulary import Touchpoint
from tests.benchmarks.floor import summarise

ANSWER = "answer: ASGI call to the last body byte"
RESPONSE = "decision_response: decide, count, render"
DECIDE = "decide(), reasons off"
# (owner, attribute, label): the steps of `DecisionEngine.decide`, in the order they run
STEPS: tuple[tuple[Any, str, str], ...] = (
    (routes, "decision_response", RESPONSE),
    (DecisionEngine, "decide", DECIDE),
    (OnlineFeatures, "read", "feature read (Redis HMGET + decoding)"),
    (DecisionEngine, "_eligible", "consent + eligibility rules"),
    (DecisionEngine, "_score", "featurise + predict (25 candidates)"),
)
SESSION = "customer session: history, contact policy, arbitration, log append + commit"
ORDER = (ANSWER, *(label for _, _, label in STEPS), SESSION)
JSON_HEADERS = [(b"content-type", b"application/json")]
TIGHT_PARAMETERS = {"decisions", "customers", "touchpoint"}


class StepTimes:
    """Samples in nanoseconds per step label, into `served` or, during a tight loop, `tight`."""

    def __init__(self) -> None:
        self.served: dict[str, list[int]] = defaultdict(list)
        self.tight: dict[str, list[int]] = defaultdict(list)
        self.current: dict[str, list[int]] = self.served

    def add(self, label: str, nanoseconds: int) -> None:
        self.current[label].append(nanoseconds)

    def summary(self) -> dict[str, Any]:
        """p50, p95, p99 and mean in microseconds per step, served and tight."""

        def of(samples: dict[str, list[int]]) -> dict[str, dict[str, float]]:
            return {label: summarise(taken) for label in ORDER if (taken := samples.get(label))}

        return {"served": of(self.served), "tight": of(self.tight)}


def _timed(function: Callable[..., Any], label: str, times: StepTimes) -> Callable[..., Any]:
    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter_ns()
        try:
            return function(*args, **kwargs)
        finally:
            times.add(label, time.perf_counter_ns() - start)

    return timed


def _timed_session(
    function: Callable[..., AbstractContextManager[Any]], times: StepTimes
) -> Callable[..., AbstractContextManager[Any]]:
    @contextmanager
    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
        start = time.perf_counter_ns()
        try:
            with function(*args, **kwargs) as session:
                yield session
        finally:
            times.add(SESSION, time.perf_counter_ns() - start)

    return timed


@contextmanager
def instrumented(times: StepTimes) -> Iterator[None]:
    """Every step of `STEPS` and the customer session wrapped in timers, in this process,
    until the block ends."""
    originals = [(owner, attribute, vars(owner)[attribute]) for owner, attribute, _ in STEPS]
    originals.append((GuardedDecisionLog, "customer_session", GuardedDecisionLog.customer_session))
    try:
        for owner, attribute, label in STEPS:
            raw = vars(owner)[attribute]
            if isinstance(raw, staticmethod):
                setattr(owner, attribute, staticmethod(_timed(raw.__func__, label, times)))
            else:
                setattr(owner, attribute, _timed(raw, label, times))
        session = _timed_session(GuardedDecisionLog.customer_session, times)
        GuardedDecisionLog.customer_session = session  # type: ignore[method-assign,assignment]
        yield
    finally:
        for owner, attribute, raw in originals:
            setattr(owner, attribute, raw)


class InstrumentedApp:
    """The service's app, timed from its call to the last body byte, plus the `/_bench` routes."""

    def __init__(self, app: Any, times: StepTimes) -> None:
        self.app = app
        self.times = times

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith("/_bench/"):
            await self._bench(scope, send)
            return
        start = time.perf_counter_ns()

        async def timed_send(message: dict[str, Any]) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.times.add(ANSWER, time.perf_counter_ns() - start)

        await self.app(scope, receive, timed_send)

    async def _bench(self, scope: dict[str, Any], send: Any) -> None:
        route = (scope["method"], scope["path"])
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        status, answer = 200, {"done": scope["path"]}
        if route == ("POST", "/_bench/reset"):
            self.times.served.clear()
        elif route == ("POST", "/_bench/tight") and query.keys() >= TIGHT_PARAMETERS:
            touchpoint = Touchpoint(query["touchpoint"])
            self.tight_loop(int(query["decisions"]), int(query["customers"]), touchpoint)
        elif route == ("GET", "/_bench/steps"):
            answer = self.times.summary()
        else:
            status, answer = 404, {"detail": f"no bench route {route} with {sorted(query)}"}
        body = json.dumps(answer).encode()
        await send({"type": "http.response.start", "status": status, "headers": JSON_HEADERS})
        await send({"type": "http.response.body", "body": body})

    def tight_loop(self, decisions: int, customers: int, touchpoint: Touchpoint) -> None:
        """`decisions` decisions back to back, reasons off, timed into `tight`; for the last
        customers first (`C` + M - 1, M - 2, ...), whom the load generator, starting at
        `C0000000`, has not served: no longer contact histories than the served ones had."""
        engine: DecisionEngine = self.app.state.runtime.engine
        self.times.tight.clear()
        self.times.current = self.times.tight
        try:
            for i in range(decisions):
                customer = f"C{customers - 1 - i % customers:07d}"
                engine.decide(customer, touchpoint, with_reasons=False)
        finally:
            self.times.current = self.times.served


def main() -> None:
    """Serve the instrumented app on `NBA_HOST`:`NBA_PORT`, one worker."""
    times = StepTimes()
    with instrumented(times):
        uvicorn.run(
            InstrumentedApp(create_app(ServiceSettings()), times),
            host=os.environ.get("NBA_HOST", "127.0.0.1"),
            port=int(os.environ.get("NBA_PORT", "8000")),
            access_log=False,
            log_level="warning",
        )


if __name__ == "__main__":
    main()
