"""What a push batch's ids are now: which source holds each, and its stored revision.

Grid and alerts databases are asked about every id of the batch. The reference database (grid
outlines, taxonomy, schemas: written by provisioning and admins only, and read-only for everyone
else) is asked only about the ids the process's ``IdCatalog`` knows it holds. Its catalog may be a
second old; a push of an id that an admin gave a reference document within that second is placed
as a new document in a grid database (never a change to the reference document). The alerts
databases are not trusted to the catalog: their documents are written by tablets, and a volunteer
must never edit a colleague's fresh alert because this process had not seen it yet.
"""

import asyncio
from collections.abc import Sequence
from typing import Any

from server.gateway._scope import Lane, Source
from server.runtime import Runtime
from sync.recent_docs import StoredDoc

__all__ = ["Stored", "ids_by_source", "stored_docs"]

Stored = dict[str, tuple[Source, dict[str, Any] | None]]
"""Id → its home source and winning revision (None when deleted), for the ids that exist."""


async def ids_by_source(
    runtime: Runtime, sources: Sequence[Source], doc_ids: Sequence[str]
) -> list[tuple[Source, list[str]]]:
    """For each source that may hold some of ``doc_ids``: those ids, in request order. Sources
    left out hold none of them (so every revision is missing there)."""
    asked: list[tuple[Source, list[str]]] = []
    for source in sources:
        if source.lane is not Lane.REFERENCE:
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
