"""Model cards and product-owner pages, checked in a real headless Chromium."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow.artifacts
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT, Stack
from tests.integration.conftest import CustomerPicker, Service

pytestmark = pytest.mark.integration

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CARD_SECTIONS = (
    "Model details",
    "Intended use",
    "Training and evaluation data",
    "Features",
    "Metrics on the holdout",
    "Policy value against the champion and the baselines",
    "Exposure and acceptance by age band",
    "Limitations and caveats",
    "Measured latency",
)


@pytest.fixture(scope="module")
def page(service: Service) -> Iterator[Any]:
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("Chromium is not installed (apt-get install chromium): browser tests skipped")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        tab = browser.new_page(
            viewport={"width": 1280, "height": 900}, base_url=str(service.client.base_url)
        )
        yield tab
        browser.close()


def test_training_logs_the_card_with_the_version(stack: Stack) -> None:
    client = MlflowClient(tracking_uri=stack.tracking_uri, registry_uri=stack.tracking_uri)
    version = client.get_model_version("nba-propensity", "2")
    description = version.description
    assert description is not None
    assert description.startswith("# Model card: nba-propensity version 2")
    assert len(description) <= 5000  # MLflow's column limit, enforced on PostgreSQL
    assert f"card/card.md` and `card/card.html` of run {version.run_id}" in description
    assert "## Model details" in description and "## Limitations and caveats" in description
    card = Path(
        mlflow.artifacts.download_artifacts(
            run_id=str(version.run_id),
            artifact_path="card/card.md",
            tracking_uri=stack.tracking_uri,
        )
    ).read_text()
    for section in CARD_SECTIONS:
        assert f"## {section}" in card
    files = {f.path for f in client.list_artifacts(str(version.run_id), "card")}
    assert {"card/card.md", "card/card.html", "card/comparison.html", "card/images"} <= files
    images = {f.path for f in client.list_artifacts(str(version.run_id), "card/images")}
    assert images == {f"card/images/{n}.png" for n in ("calibration", "importance", "slices")}


def test_models_page_links_to_a_complete_card(page: Any) -> None:
    page.goto("/models")
    assert page.locator("h1").inner_text() == "Models in service: nba-propensity"
    assert page.locator("tbody tr").count() == 2  # champion and challenger
    page.screenshot(path=str(ARTIFACTS / "models.png"))
    page.get_by_role("link", name="Card of version 2").first.click()
    page.wait_for_load_state()
    headings = page.locator("h2").all_inner_texts()
    for section in CARD_SECTIONS:
        assert section in headings
    assert "Customer Decisioning team" in page.content()
    images = page.locator("img")
    assert images.count() == 3
    for i in range(3):
        assert images.nth(i).evaluate("img => img.complete && img.naturalWidth > 100")
    assert page.locator("table").count() >= 6
    page.screenshot(path=str(ARTIFACTS / "card.png"))
    page.screenshot(path=str(ARTIFACTS / "card-full.png"), full_page=True)


def test_comparison_shows_both_versions_side_by_side(page: Any) -> None:
    page.goto("/models/compare")
    assert page.locator("h1").inner_text() == "nba-propensity: challenger v2 against champion v1"
    header = page.locator("table").first.locator("th").all_inner_texts()
    assert header == ["Figure", "Champion v1", "Challenger v2", "Difference"]
    assert "Policy value, DR (EUR)" in page.content()
    page.screenshot(path=str(ARTIFACTS / "comparison.png"), full_page=True)


def test_explorer_by_keyboard_shows_ranking_reasons_and_why_not(
    page: Any, picker: CustomerPicker, stack: Stack
) -> None:
    customer = picker.pick(
        "open_complaints > 0 and consent_profiling == 1 and consent_marketing_store == 1"
    )
    page.goto("/explorer")
    for field in ("customer_id", "touchpoint"):
        assert page.locator(f"label[for={field}]").count() == 1
    page.focus("#customer_id")
    page.keyboard.type(customer)
    page.keyboard.press("Tab")
    page.keyboard.type("store")  # selects the option by typing, as a keyboard user would
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Explain the decision"
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator("#touchpoint").input_value() == "store"
    assert page.locator("#answer-title").inner_text() == "Recommended: Resolve open complaint"
    assert page.locator("section.answer li").count() >= 1, "reasons are listed"
    tables = page.locator("table")
    assert tables.nth(0).locator("tbody tr").count() >= 1
    why_not = tables.nth(1).locator("tbody tr").all_inner_texts()
    assert any(
        "eligibility" in row and "open_complaints == 0 does not hold" in row for row in why_not
    )
    assert "monthly_income" not in page.content(), "no raw feature dump on the page"
    page.screenshot(path=str(ARTIFACTS / "explorer.png"), full_page=True)
    with sqlite3.connect(stack.root / "data" / "decision_log.db") as db:
        logged = db.execute(
            "SELECT COUNT(*) FROM decisions WHERE customer_id = ?", (customer,)
        ).fetchone()[0]
    assert logged == 0, "the explorer is a dry run"


def test_bad_explorer_input_is_explained(page: Any) -> None:
    response = page.goto("/explorer?customer_id=x&touchpoint=fax")
    assert response.status == 422
    assert page.get_by_role("alert").inner_text() == "Unknown touchpoint 'fax'."
