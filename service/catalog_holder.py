"""The live catalog: validated on load, swapped atomically, reloaded when the file changes."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from service.catalog import Action, Catalog, load_catalog
from service.contact_policy import lookback_seconds
from service.errors import CatalogError
from service.polling import Poller
from service.vocabulary import Touchpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TouchpointCandidates:
    """The actions of one touchpoint with their arrays, prepared once per catalog version."""

    actions: tuple[Action, ...]
    ids: list[str]
    types: list[str]
    values: np.ndarray
    costs: np.ndarray
    levers: np.ndarray

    @classmethod
    def of(cls, actions: list[Action]) -> TouchpointCandidates:
        """Prepare the arrays the hot path needs."""
        return cls(
            actions=tuple(actions),
            ids=[a.id for a in actions],
            types=[a.type.value for a in actions],
            values=np.array([a.value for a in actions], dtype=np.float64),
            costs=np.array([a.cost for a in actions], dtype=np.float64),
            levers=np.array([a.lever for a in actions], dtype=np.float64),
        )


@dataclass(frozen=True)
class CatalogVersion:
    """One validated catalog with everything derived from it."""

    catalog: Catalog
    loaded_at: float
    lookback: float
    by_touchpoint: dict[Touchpoint, TouchpointCandidates] = field(repr=False)

    @classmethod
    def of(cls, catalog: Catalog) -> CatalogVersion:
        """Derive per-touchpoint candidates and the history look-back."""
        return cls(
            catalog=catalog,
            loaded_at=time.time(),
            lookback=lookback_seconds(catalog),
            by_touchpoint={
                tp: TouchpointCandidates.of(catalog.candidates(tp)) for tp in Touchpoint
            },
        )


class CatalogHolder:
    """Holds the current catalog version; a failed reload keeps the last good one."""

    def __init__(self, path: Path, available_features: set[str]) -> None:
        self.path = path
        self._available = available_features
        self.last_error: str | None = None
        self._mtime = self._file_mtime()
        self.current = CatalogVersion.of(self._load())
        self._poller = Poller("catalog-watcher", self._reload_if_changed)

    def _file_mtime(self) -> float:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return 0.0

    def _load(self) -> Catalog:
        catalog = load_catalog(self.path)
        catalog.check_features(self._available)
        return catalog

    def reload(self) -> bool:
        """Load the file again; True when the new catalog serves, False when it was refused."""
        self._mtime = self._file_mtime()
        try:
            catalog = self._load()
        except CatalogError as exc:
            self.last_error = exc.message
            log.error(
                "catalog reload refused, the last good catalog keeps serving: %s", exc.message
            )
            return False
        self.current = CatalogVersion.of(catalog)
        self.last_error = None
        log.info("catalog reloaded: %d actions", len(catalog.actions))
        return True

    def watch(self, interval: float) -> None:
        """Reload in the background whenever the file's modification time changes."""
        self._poller.start(interval)

    def _reload_if_changed(self) -> None:
        if self._file_mtime() != self._mtime:
            self.reload()

    def stop(self) -> None:
        """Stop watching the file."""
        self._poller.stop()
