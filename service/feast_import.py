"""Feast without typeguard's import-time instrumentation; imported by `service/__init__.py`.

Feast decorates its classes with typeguard's `@typechecked`, which re-parses and recompiles
their source each time a process imports Feast: 4.2 s of a 5.7 s `import feast` on the
2-core benchmark machine, paid by every API worker and every `nba` command. typeguard skips
the instrumentation under `python -O` and documents its checks as not meant for production;
this does the same for Feast alone (the only package here that uses typeguard): the
decorator becomes the identity before Feast is imported. Feature definitions are still
checked where they are written, by `feast apply`, which runs Feast's own CLI in a subprocess.
Measure with `python -c "import feast"` against `python -c "import service, feast"`.
"""

from __future__ import annotations

from typing import Any

import typeguard


def _unchecked(target: Any = None, **_options: Any) -> Any:
    """`@typechecked` and `@typechecked(...)` that leave their target as it is."""
    return target if target is not None else _unchecked


typeguard.typechecked = _unchecked
