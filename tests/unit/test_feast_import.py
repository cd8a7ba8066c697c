"""Feast is imported without typeguard's per-import instrumentation (service/feast_import.py)."""

import subprocess
import sys

PROBE = (
    "import {first}; import feast.data_source as d; "
    "print('typeguard' in d.DataSource.__init__.__code__.co_names)"
)


def _instrumented(first: str) -> bool:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(first=first)],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip() == "True"


def test_feast_is_plain_after_our_packages_and_instrumented_without_them() -> None:
    assert _instrumented("json")  # the probe can tell: plain `import feast` instruments
    assert not _instrumented("service")
    assert not _instrumented("training.cli")
