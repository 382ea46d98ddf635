"""``_bulk_docs`` on a virtual database: decide each document, write the accepted ones to their grid
database, answer refusals per document as ``forbidden`` and record them for the leaders.
"""

import asyncio
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from server.auth import Principal
from server.db import upsert_insert
from server.db.models import Receipt, utc_now
from server.db.models import Refusal as RefusalRow
from server.gateway._lookup import stored_docs
from server.gateway._rules import Placement, PushContext, Refusal, decide_push, locate_batch
from server.gateway._scope import Lane, Source
from server.runtime import GridState, Runtime

__all__ = ["PushService"]

log = logging.getLogger("gridpatrol.gateway")


class PushService:
    def __init__(
        self,
        runtime: Runtime,
        principal: Principal,
        sources: Sequence[Source],
        micro_limits: Mapping[str, frozenset[str]],
    ) -> None:
        self.runtime = runtime
        self.principal = principal
        self.sources = list(sources)
        self.context = PushContext(
            principal=principal,
            sources=self.sources,
            grid_index=runtime.grids.index,
            taxonomy=runtime.taxonomy,
            max_attachment_bytes=runtime.settings.gateway.max_attachment_bytes,
            couch=runtime.settings.couch,
            micro_limits=micro_limits,
        )

    async def write(
        self, docs: list[dict[str, Any]], *, new_edits: bool, device_hint: str | None
    ) -> list[dict[str, Any]]:
        decisions: list[Placement | Refusal]
        if len(self.sources) == 1 and self.sources[0].lane is Lane.DIRECT:
            # An admin writing to a real database: CouchDB's own rules (validate_doc_update) decide.
            decisions = [Placement(self.sources[0])] * len(docs)
        else:
            ids = list(dict.fromkeys(str(d["_id"]) for d in docs))
            stored = await stored_docs(self.runtime, self.sources, ids, reuse=True) if ids else {}
            located = locate_batch(docs, self.context.grid_index)
            decisions = []
            for position, doc in enumerate(docs):
                home, current = stored.get(str(doc["_id"]), (None, None))
                decisions.append(decide_push(doc, current, home, self.context, located.get(position)))

        groups: dict[str, list[int]] = defaultdict(list)
        for index, decision in enumerate(decisions):
            if isinstance(decision, Placement):
                groups[decision.source.db].append(index)
        stamping = None
        if not new_edits and groups:
            # Replicated revisions are known before they are written: their receipts go to SQL
            # while CouchDB stores them (a receipt of a revision CouchDB refuses is never read).
            placed = [docs[i] for indexes in groups.values() for i in indexes]
            stamping = asyncio.create_task(self._stamp([(d["_id"], d.get("_rev")) for d in placed]))
        try:
            written = await asyncio.gather(
                *(
                    self.runtime.couch.bulk_docs(db, [docs[i] for i in indexes], new_edits=new_edits)
                    for db, indexes in groups.items()
                )
            )
        finally:
            # Whatever CouchDB stored before a failure, forget what this process knew of it.
            for db, indexes in groups.items():
                self.runtime.db_infos.forget(db)
                written_ids = [str(docs[i]["_id"]) for i in indexes]
                self.runtime.id_catalog.note_written(db, written_ids)
                self.runtime.recent_docs.forget(written_ids)
                self.runtime.listed_docs.forget(written_ids)
            if stamping is not None:
                await stamping
        backend: dict[int, dict[str, Any]] = {}
        for (_, indexes), answer in zip(groups.items(), written, strict=True):
            backend.update(_align(indexes, [docs[i] for i in indexes], answer, new_edits=new_edits))

        if new_edits and backend:
            await self._stamp([(a.get("id"), a.get("rev")) for a in backend.values() if "error" not in a])

        refusals = [(docs[i], d) for i, d in enumerate(decisions) if isinstance(d, Refusal)]
        if refusals:
            await self._record(refusals, device_hint)

        response: list[dict[str, Any]] = []
        for index, decision in enumerate(decisions):
            doc = docs[index]
            if isinstance(decision, Refusal):
                entry: dict[str, Any] = {"id": doc["_id"], "error": "forbidden", "reason": decision.reason}
                if "_rev" in doc:
                    entry["rev"] = doc["_rev"]
                response.append(entry)
            elif index in backend:
                response.append(backend[index])
        return response

    async def _stamp(self, revisions: Sequence[tuple[Any, Any]]) -> None:
        """Receipts: when each revision reached us (the worker orders findings by it)."""
        now = utc_now()
        rows = [
            {"doc_id": doc_id, "rev": rev, "received_at": now, "username": self.principal.username}
            for doc_id, rev in revisions
            if isinstance(doc_id, str) and isinstance(rev, str) and len(doc_id) <= 200 and len(rev) <= 200
        ]
        if not rows:
            return
        table = Receipt.__table__  # type: ignore[attr-defined]
        try:
            async with self.runtime.sessions() as session:
                # executemany of one statement: compiled once per process, not once per batch
                await session.exec(
                    upsert_insert(self.runtime.settings.database.dialect, table).on_conflict_do_nothing(),
                    params=rows,
                )
                await session.commit()
        except (SQLAlchemyError, OSError) as exc:
            # The documents are stored all the same; the worker then uses its own receive time.
            log.warning("receipts of %d revisions not recorded: %s", len(rows), exc)

    async def _record(
        self, refusals: Sequence[tuple[Mapping[str, Any], Refusal]], device_hint: str | None
    ) -> None:
        rows = []
        for doc, refusal in refusals:
            device = doc.get("device_id") if isinstance(doc.get("device_id"), str) else device_hint
            rows.append(
                {
                    "username": self.principal.username,
                    "device_id": device,
                    "doc_id": str(doc["_id"])[:200],
                    "rev": str(doc.get("_rev", ""))[:200] or None,
                    "doc_type": str(doc.get("type"))[:32] if doc.get("type") is not None else None,
                    "grid_code": _refusal_grid(self.principal, self.runtime.grids),
                    "rule": refusal.rule,
                    "field": refusal.field,
                    "reason_zh": refusal.reason_zh,
                    "reason_en": refusal.reason_en,
                }
            )
        table = RefusalRow.__table__  # type: ignore[attr-defined]
        statement = (
            upsert_insert(self.runtime.settings.database.dialect, table).values(rows).on_conflict_do_nothing()
        )
        async with self.runtime.sessions() as session:
            await session.exec(statement)
            await session.commit()


def _refusal_grid(principal: Principal, grids: GridState) -> str | None:
    """The grid whose leader answers for this user: the (parent grid of the) first grid in their scope."""
    if not principal.grids:
        return None
    first = principal.grids[0]
    return grids.parent_of.get(first, first)[:32]


def _align(
    indexes: Sequence[int],
    docs: Sequence[Mapping[str, Any]],
    answer: Sequence[dict[str, Any]],
    *,
    new_edits: bool,
) -> dict[int, dict[str, Any]]:
    """Map CouchDB's per-document answers back to request positions, by document id.

    With ``new_edits=true`` every document is answered (CouchDB in order; pouchdb-server puts
    failures first); with ``false`` only failures are listed. Answers for one id are taken in
    order, so a batch carrying several revisions of a document maps each to its own answer.
    """
    by_id: dict[str, list[dict[str, Any]]] = {}
    for entry in answer:
        by_id.setdefault(str(entry.get("id")), []).append(entry)
    aligned: dict[int, dict[str, Any]] = {}
    for index, doc in zip(indexes, docs, strict=True):
        candidates = by_id.get(str(doc.get("_id")), [])
        if not candidates:
            continue
        if new_edits:
            aligned[index] = candidates.pop(0)
            continue
        for position, entry in enumerate(candidates):
            if entry.get("rev", doc.get("_rev")) == doc.get("_rev"):
                aligned[index] = candidates.pop(position)
                break
    return aligned
