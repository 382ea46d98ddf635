"""What a push batch's ids are now: which source holds each, and its stored revision.

Grid databases are asked about every id of the batch. The small databases are asked only about the
ids their ``IdCatalog`` entry holds, which for a new finding is none:

* the reference database (grid outlines, taxonomy, schemas: written by provisioning and admins
  only, read-only for everyone else) as the process's catalog last saw it, a second old at most. A
  push of an id that an admin gave a reference document within that second is placed as a new
  document in a grid database (never a change to the reference document);
* an alerts database as of a look begun after the lookup was asked (``IdCatalog.current``: its
  feed read since the last look). Its documents are written by tablets, and a volunteer must never
  edit a colleague's fresh alert because this process had not seen it yet. A database kept in
  several copies (a CouchDB cluster with ``n`` > 1) is asked about every id instead: its feed is
  read from one copy, ``_all_docs`` from a quorum.
"""

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from server.gateway._scope import Lane, Source, alert_source, reference_source
from server.runtime import Runtime
from sync.couch import CouchStatusError, CouchTransportError
from sync.id_catalog import CatalogEntry
from sync.recent_docs import StoredDoc

__all__ = ["Stored", "stored_docs", "warm_id_catalog"]

log = logging.getLogger("gridpatrol.gateway")
_WARM_UP_S = 10.0
"""Start-up waits this long at most for the id catalog; what is not read by then is read on use."""
_WARM_UP_CONCURRENCY = 8

Stored = dict[str, tuple[Source, dict[str, Any] | None]]
"""Id → its home source and winning revision (None when deleted), for the ids that exist."""


async def _catalog_entry(runtime: Runtime, source: Source) -> CatalogEntry | None:
    """What a push may trust of a small source's ids (see the module docstring)."""
    if source.lane is Lane.REFERENCE:
        return await runtime.id_catalog.entry(runtime.couch, source.db)
    return await runtime.id_catalog.current(runtime.couch, source.db)


async def _ids_held(runtime: Runtime, source: Source, doc_ids: Sequence[str]) -> list[str]:
    """Those of ``doc_ids`` that ``source`` may hold, in request order."""
    if source.lane not in {Lane.REFERENCE, Lane.ALERT}:
        return list(doc_ids)
    entry = await _catalog_entry(runtime, source)
    return list(doc_ids) if entry is None else [i for i in doc_ids if i in entry.ids]


async def warm_id_catalog(runtime: Runtime) -> None:
    """Read the small databases' ids before serving, as the first push of each grid would: after a
    restart, that push then reads the alerts feed since start-up, not the whole database. What
    CouchDB cannot give now is read on first use."""
    couch = runtime.settings.couch
    sources = [reference_source(couch), *(alert_source(couch, g) for g in runtime.grids.grid_codes)]
    limit = asyncio.Semaphore(_WARM_UP_CONCURRENCY)

    async def read(source: Source) -> None:
        async with limit:
            try:
                await _catalog_entry(runtime, source)
            except CouchStatusError as exc:
                log.warning("id catalog of %s not read at start-up: %s", source.db, exc)

    try:
        async with asyncio.timeout(_WARM_UP_S), asyncio.TaskGroup() as group:
            for source in sources:
                group.create_task(read(source))
    except* TimeoutError:
        log.warning("id catalog not complete after %.0f s; the rest is read on use", _WARM_UP_S)
    except* CouchTransportError as unreachable:
        log.warning("id catalog not read at start-up (CouchDB away?): %s", unreachable.exceptions[0])


async def _lookup(runtime: Runtime, source: Source, doc_ids: Sequence[str]) -> list[dict[str, Any]]:
    held = await _ids_held(runtime, source, doc_ids)
    if not held:
        return []
    answer = await runtime.couch.all_docs(source.db, keys=held, params={"include_docs": True})
    rows: list[dict[str, Any]] = answer.get("rows", [])
    return rows


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
    answers = await asyncio.gather(*(_lookup(runtime, source, doc_ids) for source in sources))
    found: Stored = {}
    for source, rows in zip(sources, answers, strict=True):
        for row in rows:
            if "error" in row or row.get("id") in found:
                continue
            found[row["id"]] = (source, row.get("doc"))
            runtime.doc_homes.remember(str(row["id"]), source.db)
    runtime.recent_docs.remember(
        dbs,
        {i: StoredDoc(found[i][0].db, found[i][1]) if i in found else StoredDoc(None, None) for i in doc_ids},
    )
    return found
