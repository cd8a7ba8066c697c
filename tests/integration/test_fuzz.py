"""Schemathesis fuzzes every operation of the OpenAPI contract on the real app in-process,
with a valid API key: no answer is a server error and every answer conforms to the schema.

Bounded for CI: a fixed seed, deterministic generation, no example database, 50 examples
per operation (valid and invalid ones) plus the coverage phase's boundary cases, no
stateful phase (the contract has no links). The
contract is the app's own OpenAPI document, read when this module is collected (building
the app loads nothing); the requests go to an app started on the small stack.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.app import create_app
from service.settings import ServiceSettings
from tests.conftest import Stack
from tests.integration.inprocess import Keys, app_settings

pytestmark = pytest.mark.integration

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 8,
        "generation": {"max-examples": 50, "deterministic": True, "database": "none"},
        "phases": {"stateful": {"enabled": False}},
    }
)
schema = schemathesis.openapi.from_dict(
    create_app(ServiceSettings(api_keys_file=None)).openapi(), config=CONFIG
)


@pytest.fixture(scope="module")
def served(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[FastAPI, Keys]]:
    settings, keys = app_settings(stack, tmp_path_factory.mktemp("fuzz"))
    yield create_app(settings), keys  # schemathesis starts its lifespan on the first call
    shutdown_lifespans()  # the app's shutdown: pollers stop, the decision log closes


@schema.parametrize()
def test_every_operation_honours_the_contract(
    case: schemathesis.Case[Any], served: tuple[FastAPI, Keys]
) -> None:
    app, keys = served
    case.call_and_validate(app=app, headers=keys.headers, checks=CHECKS)


def test_the_contract_covers_every_operation() -> None:
    # The app's own document parses: every result is an Ok (an Err has no `ok()`).
    results = cast(
        Iterator[Ok[schemathesis.APIOperation[Any, Any, Any, Any]]], schema.get_all_operations()
    )
    operations = {f"{op.ok().method.upper()} {op.ok().path}" for op in results}
    assert {
        "POST /v1/decisions",
        "POST /v1/feedback",
        "GET /health/live",
        "GET /health/ready",
        "POST /admin/models/reload",
        "PUT /admin/customers/{customer_id}/consent",
        "DELETE /admin/customers/{customer_id}",
    } <= operations
