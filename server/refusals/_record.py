"""Writing refusals down: each value fitted to its column, each refusal filed under the grids and
micro-grids it concerns.

A refusal's row is written in the same request that answers the push, after the batch's accepted
documents are stored. If a value the tablet sent (a device id, an attachment name in ``field``, a
document id) made the INSERT fail, the whole batch would answer 500, the refusal would be lost and
PouchDB would send the batch again forever: so nothing a client sends reaches SQL unfitted.
"""

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import Table

from geo import Assignment
from server.db import SessionMaker, upsert_insert
from server.db.models import Refusal, RefusalArea

__all__ = ["filed_under", "fingerprint", "fit_refusal", "record_refusals"]

_REFUSALS: Table = Refusal.__table__  # type: ignore[attr-defined]
_AREAS: Table = RefusalArea.__table__  # type: ignore[attr-defined]
_SAME_REFUSAL = ("username", "doc_id", "rev", "rule", "field", "reason_en", "grid_code", "micro_grid_code")
"""What a refusal sent again repeats. With a revision, the revision names the content; without one
(a document posted with ``new_edits`` true, never stored), the field, the reason and the place do:
an edited document refused for another value, or moved to another grid's leaders, is a new
refusal; the same one sent again is not."""


def _fit(table: Table, column: str, value: str | None) -> str | None:
    """``value`` as ``column`` stores it: cut to the column's length (in characters, as VARCHAR
    counts them), without NUL (PostgreSQL's text cannot hold it) and with any lone surrogate
    replaced (it has no UTF-8 form)."""
    if value is None:
        return None
    text = value.replace("\x00", "")
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
    length: int | None = getattr(table.c[column].type, "length", None)
    return text[:length] if length else text


def fit_refusal(values: Mapping[str, str | None]) -> dict[str, str | None]:
    """A ``refusals`` row from these column values, every one fitted to its column."""
    return {column: _fit(_REFUSALS, column, value) for column, value in values.items()}


def fingerprint(row: Mapping[str, str | None]) -> str:
    """The same for a refusal and for that refusal sent again (a row's fitted values)."""
    same = [row.get(column) or "" for column in _SAME_REFUSAL]
    return hashlib.sha256(json.dumps(same, ensure_ascii=False).encode()).hexdigest()


def filed_under(
    scope: Iterable[str], parent_of: Mapping[str, str], assignment: Assignment | None
) -> frozenset[str]:
    """The grids and micro-grids whose leaders see a refusal: those of its author's scope, and the
    grid and micro-grid where the document lies (with every grid its accuracy circle touches near a
    boundary). Each micro-grid brings its grid, so a grid's leader finds its micro-grids' refusals
    by the grid's code and a micro-grid's leader finds only their micro-grid's."""
    codes = set(scope)
    if assignment is not None:
        codes.update(c for c in (assignment.grid, assignment.micro_grid) if c is not None)
        codes.update(assignment.candidates)
    codes.update(parent_of[c] for c in list(codes) if c in parent_of)
    fitted = (_fit(_AREAS, "code", c) for c in codes)
    return frozenset(c for c in fitted if c)


async def record_refusals(
    sessions: SessionMaker,
    dialect: str,
    refusals: Sequence[tuple[Mapping[str, str | None], frozenset[str]]],
) -> None:
    """Write refusals (their column values, the codes they are filed under) in one transaction.

    A refusal already recorded (the same push sent again) keeps its row and its areas.
    """
    rows = [fit_refusal(values) for values, _ in refusals]
    for row in rows:
        row["fingerprint"] = fingerprint(row)
    areas: dict[str | None, set[str]] = defaultdict(set)
    for row, (_, codes) in zip(rows, refusals, strict=True):
        areas[row["fingerprint"]].update(codes)
    statement = (
        upsert_insert(dialect, _REFUSALS)
        .values(rows)
        .on_conflict_do_nothing()
        .returning(_REFUSALS.c.id, _REFUSALS.c.fingerprint)
    )
    async with sessions() as session:
        inserted = (await session.exec(statement)).all()
        filed = [
            {"refusal_id": refusal_id, "code": code}
            for refusal_id, key in inserted
            for code in sorted(areas[key])
        ]
        if filed:
            await session.exec(upsert_insert(dialect, _AREAS).on_conflict_do_nothing(), params=filed)
        await session.commit()
