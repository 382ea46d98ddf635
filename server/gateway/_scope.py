"""Which CouchDB databases make up a user's virtual database."""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from server.auth import Principal
from server.settings import CouchSettings

__all__ = [
    "REFERENCE_KEY",
    "Lane",
    "Source",
    "alert_source",
    "reference_source",
    "scope_grids",
    "user_sources",
]

REFERENCE_KEY = "ref"


class Lane(StrEnum):
    """What a source database holds, in the order a pull reads them."""

    ALERT = "alert"
    """Urgent findings and missing-person alerts: they skip the queue."""
    REFERENCE = "reference"
    """Grid outlines, taxonomy, schemas: read-only for tablets."""
    GRID = "grid"
    """Everything else a grid's tablets write, and the case statuses of that grid."""
    DIRECT = "direct"
    """Any database of the backend, opened directly by an admin."""


@dataclass(frozen=True)
class Source:
    key: str
    """Stable name inside sequence tokens: ``ref``, the grid code, or ``alert:`` + grid code."""
    db: str
    """The real CouchDB database."""
    grid: str | None = None
    lane: Lane = Lane.GRID

    @property
    def is_reference(self) -> bool:
        return self.lane is Lane.REFERENCE


def alert_source(couch: CouchSettings, grid: str) -> Source:
    return Source(f"alert:{grid}", couch.alert_db(grid), grid, Lane.ALERT)


def reference_source(couch: CouchSettings) -> Source:
    return Source(REFERENCE_KEY, couch.reference_db, None, Lane.REFERENCE)


def scope_grids(principal: Principal, known_grids: Iterable[str], parent_of: Mapping[str, str]) -> list[str]:
    """Grid codes a user works in. Admins have every grid; a micro-grid in a scope means its grid."""
    known = sorted(known_grids)
    if principal.is_admin:
        return known
    grids = {parent_of.get(code, code) for code in principal.grids}
    return [code for code in known if code in grids]


def user_sources(
    principal: Principal, couch: CouchSettings, known_grids: Sequence[str], parent_of: Mapping[str, str]
) -> list[Source]:
    """Alerts first (an emergency must not wait behind a backlog), then reference data (outlines
    and taxonomy before the rest), then the grids' own databases."""
    grids = scope_grids(principal, known_grids, parent_of)
    return [
        *(alert_source(couch, g) for g in grids),
        reference_source(couch),
        *(Source(g, couch.grid_db(g), g, Lane.GRID) for g in grids),
    ]
