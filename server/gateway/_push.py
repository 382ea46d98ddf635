"""``_bulk_docs`` on a virtual database: decide each document, write the accepted ones to their grid
database, answer refusals per document as ``forbidden`` and record them for the leaders.
"""

import asyncio
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from field_schema import EMERGENCY_TYPES
from geo import Assignment
from server.auth import Principal
from server.db import upsert_insert
from server.db.models import Receipt, utc_now
from server.gateway._lookup import Stored, stored_docs
from server.gateway._rules import Placement, PushContext, Refusal, decide_foreign, decide_push, locate_batch
from server.gateway._scope import Lane, Source, alert_source
from server.gateway._visibility import Visibility
from server.refusals import filed_under, record_refusals
from server.runtime import Runtime
from sync.tombstones import bare

__all__ = ["PushService"]

log = logging.getLogger("gridpatrol.gateway")


class PushService:
    def __init__(
        self,
        runtime: Runtime,
        principal: Principal,
        sources: Sequence[Source],
        visibility: Visibility,
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
            micro_limits=visibility.limits,
            visible=visibility.visible,
        )

    async def write(
        self, docs: list[dict[str, Any]], *, new_edits: bool, device_hint: str | None
    ) -> list[dict[str, Any]]:
        decisions: list[Placement | Refusal]
        located: Mapping[int, Assignment] = {}
        if len(self.sources) == 1 and self.sources[0].lane is Lane.DIRECT:
            # An admin writing to a real database: CouchDB's own rules (validate_doc_update) decide.
            decisions = [Placement(self.sources[0])] * len(docs)
        else:
            decisions, located = await self._decide(docs)

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

        refusals = [(docs[i], d, located.get(i)) for i, d in enumerate(decisions) if isinstance(d, Refusal)]
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

    async def _decide(
        self, docs: list[dict[str, Any]]
    ) -> tuple[list[Placement | Refusal], dict[int, Assignment]]:
        """Each document's decision, and where each located one lies (by position)."""
        ids = list(dict.fromkeys(str(d["_id"]) for d in docs))
        stored = await stored_docs(self.runtime, self.sources, ids, reuse=True) if ids else {}
        located = locate_batch(docs, self.context.grid_index)
        decisions: list[Placement | Refusal] = []
        for position, doc in enumerate(docs):
            home, current = stored.get(str(doc["_id"]), (None, None))
            decisions.append(self._decide_one(doc, home, current, located.get(position)))
        await self._decide_foreign(docs, decisions, stored, located)
        for position, (doc, decision) in enumerate(zip(docs, decisions, strict=True)):
            if isinstance(decision, Placement) and doc.get("_deleted") and not self.principal.is_admin:
                # Nothing reads a deletion's body (it ends a document), and one would skip every
                # check a live document gets.
                docs[position] = bare(doc)
        return decisions, located

    def _decide_one(
        self,
        doc: dict[str, Any],
        home: Source | None,
        current: dict[str, Any] | None,
        assignment: Assignment | None,
    ) -> Placement | Refusal:
        try:
            return decide_push(doc, current, home, self.context, assignment)
        except Exception:
            # One document the rules did not foresee must not fail its batch: the others are stored.
            log.exception("push rules failed on document %r", str(doc.get("_id"))[:200])
            return _UNREADABLE

    async def _decide_foreign(
        self,
        docs: Sequence[dict[str, Any]],
        decisions: list[Placement | Refusal],
        stored: Stored,
        located: Mapping[int, Assignment],
    ) -> None:
        """Alerts and deletions whose ids the user's databases do not hold: an alert its author
        filed in another grid is there (and stays there when it moves), and only its author changes
        it. The alerts databases are small and catalogued: for new ids this costs a look at their
        feeds, never a read of their documents."""
        own = {s.db for s in self.sources}
        unknown = [
            position
            for position, (doc, decision) in enumerate(zip(docs, decisions, strict=True))
            if isinstance(decision, Placement)
            and str(doc["_id"]) not in stored
            and (doc.get("type") in EMERGENCY_TYPES or doc.get("_deleted"))
        ]
        if not unknown:
            return
        couch = self.runtime.settings.couch
        others = [
            s for s in (alert_source(couch, g) for g in self.runtime.grids.grid_codes) if s.db not in own
        ]
        found = (
            await stored_docs(self.runtime, others, [str(docs[i]["_id"]) for i in unknown]) if others else {}
        )
        for position in unknown:
            hit = found.get(str(docs[position]["_id"]))
            if hit is not None:
                home, current = hit
                decisions[position] = decide_foreign(
                    docs[position], current, home, self.context, located.get(position)
                )

    async def _stamp(self, revisions: Sequence[tuple[Any, Any]]) -> None:
        """Receipts: when each revision reached us (the worker orders findings by it)."""
        now = utc_now()
        rows = [
            {"doc_id": doc_id, "rev": rev, "received_at": now, "username": self.principal.username}
            for doc_id, rev in revisions
            if isinstance(doc_id, str) and isinstance(rev, str) and _fits(doc_id) and _fits(rev)
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
        self,
        refusals: Sequence[tuple[Mapping[str, Any], Refusal, Assignment | None]],
        device_hint: str | None,
    ) -> None:
        """Each refusal with where its document lies (as the batch was located), for the leaders of
        that place and of the author's scope."""
        parent_of = self.runtime.grids.parent_of
        entries = []
        for doc, refusal, where in refusals:
            device = doc.get("device_id") if isinstance(doc.get("device_id"), str) else device_hint
            values = {
                "username": self.principal.username,
                "device_id": device,
                "doc_id": str(doc["_id"]),
                "rev": str(doc.get("_rev", "")) or None,
                "doc_type": str(doc.get("type")) if doc.get("type") is not None else None,
                "grid_code": where.grid if where is not None else None,
                "micro_grid_code": where.micro_grid if where is not None else None,
                "rule": refusal.rule,
                "field": refusal.field,
                "reason_zh": refusal.reason_zh,
                "reason_en": refusal.reason_en,
            }
            entries.append((values, filed_under(self.principal.grids, parent_of, where)))
        await record_refusals(self.runtime.sessions, self.runtime.settings.database.dialect, entries)


def _fits(value: str) -> bool:
    """Whether a receipt column takes it (PostgreSQL refuses NUL in text: the whole insert fails)."""
    return len(value) <= 200 and "\x00" not in value


_UNREADABLE = Refusal(
    "invalid_document", "文档无法处理，请检查其内容", "the document could not be processed; check its content"
)


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
