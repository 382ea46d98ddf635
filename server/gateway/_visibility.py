"""Which documents of a grid database a user may see, when their scope is a set of micro-grids.

A user whose scope names a whole grid sees all of that grid's database. A user whose scope names
only some micro-grids of a grid sees, in that grid's database, documents located in those
micro-grids, their own documents, and documents without a place (tombstones, grid-wide notes).
"""

from collections.abc import Mapping
from typing import Any

from field_schema import DocumentInvalid, upgrade
from geo import to_wgs84
from server.auth import Principal
from server.runtime import GridState

__all__ = ["Visibility"]


class Visibility:
    def __init__(self, principal: Principal, grids: GridState) -> None:
        self.principal = principal
        self._grids = grids
        whole: set[str] = set()
        micro: dict[str, set[str]] = {}
        if not principal.is_admin:
            for code in principal.grids:
                parent = grids.parent_of.get(code)
                if parent is None:
                    whole.add(code)
                else:
                    micro.setdefault(parent, set()).add(code)
        self._micro = {grid: codes for grid, codes in micro.items() if grid not in whole}

    @property
    def limits(self) -> dict[str, frozenset[str]]:
        """Grid → the only micro-grids the user works in there."""
        return {grid: frozenset(codes) for grid, codes in self._micro.items()}

    def micro_grids(self, grid: str | None) -> set[str] | None:
        """The micro-grids the user is limited to in ``grid``; None when they see the whole grid."""
        return self._micro.get(grid) if grid is not None else None

    def filters(self, grid: str | None) -> bool:
        return self.micro_grids(grid) is not None

    def visible(self, grid: str | None, doc: Mapping[str, Any] | None) -> bool:
        allowed = self.micro_grids(grid)
        if allowed is None or doc is None or doc.get("_deleted"):
            return True
        if doc.get("author") == self.principal.username:
            return True
        place = self.micro_grid_of(doc)
        return place is None or place in allowed

    def micro_grid_of(self, doc: Mapping[str, Any]) -> str | None:
        """The micro-grid a document belongs to: status docs say it, others by location or hint."""
        stated = doc.get("micro_grid") if doc.get("type") == "case_status" else None
        if isinstance(stated, str):
            return stated
        index = self._grids.index
        location = None
        try:
            location = upgrade(doc).get("location")
        except DocumentInvalid:
            location = doc.get("location")
        if index is not None and isinstance(location, Mapping):
            try:
                lon, lat = to_wgs84(float(location["lon"]), float(location["lat"]), str(location["datum"]))
            except (KeyError, TypeError, ValueError):
                pass
            else:
                micro = index.assign(lon, lat).micro_grid
                if micro is not None:
                    return micro
        hint = doc.get("micro_grid_hint")
        return hint if isinstance(hint, str) else None
