"""`.ci/audit` turns pip-audit's JSON report into a verdict (a fake pip-audit writes it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
FAKE = """import json, os, sys
args = sys.argv[1:]
report = os.environ["FAKE_REPORT"]
if report != "crash":
    open(args[args.index("--output") + 1], "w").write(report)
print("fake pip-audit " + " ".join(args), file=sys.stderr)
sys.exit(int(os.environ["FAKE_EXIT"]))
"""


def audit(tmp_path: Path, report: Any, exit_code: int = 0, **env: str) -> tuple[int, str]:
    fake = tmp_path / "pip-audit"
    fake.write_text(f"#!{sys.executable}\n{FAKE}")
    fake.chmod(0o755)
    run = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "audit")],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("NBA_")},
            "NBA_PIP_AUDIT": str(fake),
            "FAKE_REPORT": report if isinstance(report, str) else json.dumps(report),
            "FAKE_EXIT": str(exit_code),
            **env,
        },
        capture_output=True,
        text=True,
        check=False,
    )
    return run.returncode, run.stdout + run.stderr


def deps(audited: int, skipped: int) -> list[dict[str, Any]]:
    ok = [{"name": f"ok{i}", "version": "1.0", "vulns": []} for i in range(audited)]
    gone = [
        {"name": f"gone{i}", "skip_reason": f"Dependency not found on PyPI: gone{i} (1.0)"}
        for i in range(skipped)
    ]
    return ok + gone


def test_a_known_vulnerability_fails(tmp_path: Path) -> None:
    vulnerable = {
        "name": "jinja2",
        "version": "3.1.2",
        "vulns": [{"id": "GHSA-h5c8-rqwp-cp95", "fix_versions": ["3.1.3"]}],
    }
    report = {"dependencies": [*deps(1, 150), vulnerable], "fixes": []}
    code, output = audit(tmp_path, report, exit_code=1)
    assert code == 1
    assert "VULNERABLE: jinja2 3.1.2: GHSA-h5c8-rqwp-cp95 (fixed in 3.1.3)" in output


def test_a_clean_audit_passes_and_names_the_few_skipped(tmp_path: Path) -> None:
    code, output = audit(tmp_path, {"dependencies": deps(10, 1), "fixes": []})
    assert code == 0
    assert "no known vulnerabilities in 10 packages" in output and "gone0" in output


@pytest.mark.parametrize(
    "report", [{"dependencies": deps(2, 197), "fixes": []}, "crash"], ids=["skipped", "crash"]
)
def test_an_audit_that_could_not_run_warns_unless_required(tmp_path: Path, report: Any) -> None:
    code, output = audit(tmp_path, report, exit_code=0 if report != "crash" else 1)
    assert code == 0
    assert "WARNING: pip-audit could not audit from this machine" in output
    if report != "crash":
        assert "197 of 199 packages skipped" in output
    code, output = audit(tmp_path, report, exit_code=1, NBA_AUDIT_REQUIRED="1")
    assert code == 1 and "ERROR: pip-audit could not audit" in output
