"""Which CouchDB databases make up a user's virtual database."""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from server.auth import Principal
from server.settings import CouchSettings

__all__ = ["REFERENCE_KEY", "Source", "scope_grids", "user_sources"]

REFERENCE_KEY = "ref"


@dataclass(frozen=True)
class Source:
    key: str
    """Stable name inside sequence tokens: ``ref`` or the grid code."""
    db: str
    """The real CouchDB database."""
    grid: str | None = None

    @property
    def is_reference(self) -> bool:
        return self.grid is None


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
    """Reference data first (tablets need outlines and taxonomy before anything else), then grids."""
    grids = scope_grids(principal, known_grids, parent_of)
    return [Source(REFERENCE_KEY, couch.reference_db), *(Source(g, couch.grid_db(g), g) for g in grids)]
