"""The notebooks run top to bottom on the small stack, on their own copy of the registry."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT, Stack

pytestmark = pytest.mark.integration


@pytest.fixture
def notebook_env(stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(Path(stack.tracking_uri.removeprefix("sqlite:///")), tmp_path / "mlflow.db")
    env = {
        **stack.env,
        "NBA_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "NBA_MODEL_CACHE_DIR": str(tmp_path / "models"),
        "NBA_BOOTSTRAP_RESAMPLES": "30",
        "NBA_DECISION_LOG_PATH": str(tmp_path / "none.db"),
    }
    for key, value in env.items():
        if key.startswith("NBA_"):
            monkeypatch.setenv(key, value)
    return tmp_path


def execute(name: str, cwd: Path) -> nbformat.NotebookNode:
    # nbformat does not annotate `read`
    notebook: nbformat.NotebookNode = nbformat.read(  # type: ignore[no-untyped-call]
        ROOT / "notebooks" / name, as_version=4
    )
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    ).execute()
    return notebook


def outputs(notebook: nbformat.NotebookNode) -> str:
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", ""))
            texts.append(str(output.get("data", {}).get("text/plain", "")))
    return "\n".join(texts)


def test_retraining_notebook_registers_a_challenger(notebook_env: Path, stack: Stack) -> None:
    text = outputs(execute("retraining.ipynb", stack.root))
    assert "('challenger',)" in text
    assert "oracle" in text and "true_value" in text
    assert "passes" in text or "refused" in text


def test_exploration_notebook_runs(notebook_env: Path, stack: Stack) -> None:
    text = outputs(execute("exploration.ipynb", stack.root))
    assert "decisions from" in text
    assert "acceptance" in text
