"""Which of a view's sources can hold a given document id, and what they hold.

Grid databases are asked about every id. The small databases (reference data, alerts) are asked
only about the ids the process's ``IdCatalog`` knows they hold, so a batch of new findings costs
one request to the grid database instead of one per source (see ``sync.id_catalog`` for how stale
the catalog may be).
"""

import asyncio
from collections.abc import Sequence
from typing import Any

from server.gateway._scope import Lane, Source
from server.runtime import Runtime
from sync.recent_docs import StoredDoc

__all__ = ["CATALOGUED_LANES", "Stored", "ids_by_source", "stored_docs"]

Stored = dict[str, tuple[Source, dict[str, Any] | None]]
"""Id → its home source and winning revision (None when deleted), for the ids that exist."""

CATALOGUED_LANES = frozenset({Lane.ALERT, Lane.REFERENCE})


async def ids_by_source(
    runtime: Runtime, sources: Sequence[Source], doc_ids: Sequence[str]
) -> list[tuple[Source, list[str]]]:
    """For each source that may hold some of ``doc_ids``: those ids, in request order. Sources
    left out hold none of them (so every revision is missing there)."""
    asked: list[tuple[Source, list[str]]] = []
    for source in sources:
        if source.lane not in CATALOGUED_LANES:
            asked.append((source, list(doc_ids)))
            continue
        entry = await runtime.id_catalog.entry(runtime.couch, source.db)
        held = list(doc_ids) if entry is None else [i for i in doc_ids if i in entry.ids]
        if held:
            asked.append((source, held))
    return asked


async def stored_docs(
    runtime: Runtime, sources: Sequence[Source], doc_ids: Sequence[str], *, reuse: bool = False
) -> Stored:
    """Home and winning revision of every id that exists in one of ``sources``. ``reuse`` accepts
    what a lookup of the same ids found a moment ago (see ``sync.recent_docs``)."""
    dbs = [s.db for s in sources]
    by_db = {s.db: s for s in sources}
    if reuse:
        recalled = runtime.recent_docs.recall(dbs, doc_ids)
        if recalled is not None:
            return {i: (by_db[r.db], r.doc) for i, r in recalled.items() if r.db is not None}
    asked = await ids_by_source(runtime, sources, doc_ids)
    answers = await asyncio.gather(
        *(runtime.couch.all_docs(s.db, keys=ids, params={"include_docs": True}) for s, ids in asked)
    )
    found: Stored = {}
    for (source, _), answer in zip(asked, answers, strict=True):
        for row in answer.get("rows", []):
            if "error" in row or row.get("id") in found:
                continue
            found[row["id"]] = (source, row.get("doc"))
            runtime.doc_homes.remember(str(row["id"]), source.db)
    runtime.recent_docs.remember(
        dbs,
        {i: StoredDoc(found[i][0].db, found[i][1]) if i in found else StoredDoc(None, None) for i in doc_ids},
    )
    return found
