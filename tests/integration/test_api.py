"""The served API over real HTTP: `python -m service` on the stack `nba demo` built."""

from __future__ import annotations

from pathlib import Path

import httpx
import mlflow.lightgbm
import numpy as np
import pytest
from feast import FeatureStore
from mlflow.tracking import MlflowClient

from service.features import customer_vector, featurize
from service.model import load_registered_model
from tests.conftest import Stack
from tests.integration.conftest import CustomerPicker

pytestmark = pytest.mark.integration

PERSONALISED = "consent_profiling == 1 and consent_marketing_call_center == 1"


def decide(api: httpx.Client, **body: object) -> httpx.Response:
    return api.post("/v1/decisions", json=body)


def test_health_endpoints(api: httpx.Client) -> None:
    assert api.get("/health/live").json()["status"] == "ok"
    ready = api.get("/health/ready").json()
    assert ready["status"] == "ready"
    models = ready["models"]
    assert models["champion"] == {"name": "nba-propensity", "version": "2", "alias": "champion"}
    assert models["source"] == "registry" and models["last_reload_error"] is None
    assert ready["catalog"]["actions"] == 20


def test_decision_comes_from_the_registered_champion(
    api: httpx.Client, stack: Stack, picker: CustomerPicker, tmp_path: Path
) -> None:
    customer = picker.pick(PERSONALISED)
    response = decide(api, customer_id=customer, touchpoint="call_center")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["personalised"] is True
    assert body["model"]["version"] == "2"
    assert body["action"] == body["ranked"][0], "no exploration at the call center"
    assert body["selection_probability"] == 1.0 and body["explored"] is False

    # Recompute the scores independently: Feast online read + registry model + featurisation.
    model = load_registered_model(stack.tracking_uri, "nba-propensity", "champion", tmp_path)
    store = FeatureStore(repo_path=str(stack.feature_repo))
    online = store.get_online_features(
        features=store.get_feature_service("nba_model_features"),
        entity_rows=[{"customer_id": customer}],
    ).to_dict()
    values_now = {k: v[0] for k, v in online.items()}
    scored = [r for r in body["ranked"] if r["propensity"] is not None]
    matrix = featurize(
        model.spec,
        customer_vector(model.spec, values_now),
        [r["action_id"] for r in scored],
        [r["type"] for r in scored],
        ["call_center"] * len(scored),
    )
    np.testing.assert_allclose([r["propensity"] for r in scored], model.predict(matrix), rtol=1e-9)


def test_served_model_is_the_logged_lightgbm_model(api: httpx.Client, stack: Stack) -> None:
    client = MlflowClient(tracking_uri=stack.tracking_uri, registry_uri=stack.tracking_uri)
    version = client.get_model_version_by_alias("nba-propensity", "champion")
    cached = stack.root / "models" / "nba-propensity" / str(version.version)
    assert (cached / "MLmodel").exists(), "the service keeps a local copy of what it serves"
    assert mlflow.lightgbm.load_model(str(cached)).num_feature() > 20


def test_every_touchpoint_answers(api: httpx.Client, picker: CustomerPicker) -> None:
    customer = picker.pick("consent_profiling == 1")
    for touchpoint in ("web", "app", "call_center", "email", "store"):
        response = decide(api, customer_id=customer, touchpoint=touchpoint)
        assert response.status_code == 200, response.text


def test_unknown_customer_gets_a_flagged_non_personalised_answer(api: httpx.Client) -> None:
    response = decide(api, customer_id="not-a-customer-😀", touchpoint="store")
    assert response.status_code == 200
    body = response.json()
    assert body["personalised"] is False
    assert "not personalised" in body["notices"][0]
    assert body["reasons"] == []
    assert all(r["type"] in ("service", "info", "no_action") for r in body["ranked"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"customer_id": "C0000001", "touchpoint": "fax"}, "touchpoint"),
        ({"touchpoint": "web"}, "customer_id"),
        ({"customer_id": "", "touchpoint": "web"}, "customer_id"),
        ({"customer_id": "x" * 129, "touchpoint": "web"}, "customer_id"),
        ({"customer_id": "bad\nid", "touchpoint": "web"}, "customer_id"),
        ({"customer_id": "C0000001", "touchpoint": "web", "extra": 1}, "extra"),
        ({"customer_id": "C0000001", "touchpoint": "web", "explain": "maybe"}, "explain"),
    ],
)
def test_bad_input_gets_422_naming_the_field(
    api: httpx.Client, body: dict[str, object], field: str
) -> None:
    response = api.post("/v1/decisions", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert field in [d["field"] for d in error["details"]]
    assert field in error["message"]


def test_malformed_json_and_unknown_route_use_the_error_format(api: httpx.Client) -> None:
    response = api.post(
        "/v1/decisions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
    missing = api.get("/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_openapi_documents_every_endpoint(api: httpx.Client) -> None:
    spec = api.get("/openapi.json").json()
    decisions = spec["paths"]["/v1/decisions"]["post"]
    assert {"200", "422", "503"} <= set(decisions["responses"])
    feedback = spec["paths"]["/v1/feedback"]["post"]
    assert {"202", "404", "422", "503"} <= set(feedback["responses"])
    assert api.get("/docs").status_code == 200
