"""Document conflicts: two tablets edited the same document offline and CouchDB kept both branches.

The worker asks ``_changes`` for ``conflicts=true``; every row whose document carries
``_conflicts`` goes through ``examine``:

1. every live leaf is fetched with its revision history (``_bulk_get?revs=true``, photos inline);
2. the newest revision common to every branch is the ancestor; its body is fetched
   (``GET ?rev=``). When it is gone (compacted) the conflict is **hard**;
3. per branch, the top-level fields that differ from the ancestor (each photo is its own field,
   ``_attachments/<name>``, compared by digest) are that branch's changes;
4. no field changed differently on two branches → **soft**: the ancestor plus every branch's
   changes becomes a new revision on the winning branch, and every losing leaf is deleted —
   tablets converge on their next pull. The merge is recorded in SQL first and written to
   CouchDB after that commit, through the outbox of ``sync/merge_outbox.py``, so a failure
   between the two never loses the record. Otherwise **hard**: nothing is written; the branches
   wait for a grid leader side by side (``server/merging``), whose choice (``compose``) goes back
   to CouchDB through the same outbox, recorded first, so it outlives the request that made it.
"""

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.db.locks import lock_findings_by_id
from server.db.models import Case, CaseEvent, Conflict, ConflictKind, ConflictStatus, utc_now
from sync.couch import CouchClient, CouchError, CouchNotFound
from sync.merge import WORKER_ACTOR

__all__ = [
    "SETTLED_ELSEWHERE",
    "Branch",
    "ConflictReport",
    "ConflictWriteError",
    "changed_fields",
    "compose",
    "conflict_event",
    "examine",
    "fetch_branches",
    "leaves_key",
    "public_body",
    "record",
    "settle_resolved_elsewhere",
]

SETTLED_ELSEWHERE = "冲突已在别处解决 / the conflict was settled outside gridpatrol"
_BOOKKEEPING = frozenset({"_id", "_rev", "_revisions", "_conflicts", "_deleted_conflicts", "_attachments"})


@dataclass
class Branch:
    rev: str
    body: dict[str, Any]
    """The leaf as CouchDB returned it (``_attachments`` with inline data when fetched so)."""
    history: list[str]
    """Revision ids from this leaf back to the oldest one kept, newest first."""


@dataclass
class ConflictReport:
    doc_id: str
    winner_rev: str
    leaves: list[str]
    kind: str
    """soft or hard."""
    fields: list[str]
    ancestor_rev: str | None
    ancestor: dict[str, Any] | None
    branches: list[Branch]
    merged: dict[str, Any] | None = None
    """For a soft conflict: the merged body to write (no ``_rev``)."""
    changes: dict[str, list[str]] = field(default_factory=dict)
    """Per leaf revision: the fields it changed."""


def leaves_key(leaves: Sequence[str]) -> str:
    return " ".join(sorted(leaves))[:400]


def _history(doc: Mapping[str, Any]) -> list[str]:
    revisions = doc.get("_revisions") or {}
    start, ids = int(revisions.get("start", 0)), list(revisions.get("ids", []))
    if not ids:
        return [str(doc["_rev"])]
    return [f"{start - i}-{rev_id}" for i, rev_id in enumerate(ids)]


def _fields(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A document as a flat map of comparable fields (photos by digest)."""
    flat = {k: v for k, v in doc.items() if k not in _BOOKKEEPING}
    for name, stub in (doc.get("_attachments") or {}).items():
        flat[f"_attachments/{name}"] = stub.get("digest") or stub.get("data")
    return flat


def changed_fields(ancestor: Mapping[str, Any], branch: Mapping[str, Any]) -> dict[str, Any]:
    """Fields whose value on ``branch`` differs from ``ancestor`` (``None`` marks a removal)."""
    before, after = _fields(ancestor), _fields(branch)
    return {k: after.get(k) for k in sorted(before.keys() | after.keys()) if before.get(k) != after.get(k)}


def public_body(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A body to show a leader or keep in SQL: no bookkeeping, photos listed without their data."""
    body = {k: v for k, v in doc.items() if k not in _BOOKKEEPING}
    photos = doc.get("_attachments") or {}
    if photos:
        body["_attachments"] = {
            name: {
                "content_type": a.get("content_type"),
                "digest": a.get("digest"),
                "length": a.get("length"),
            }
            for name, a in photos.items()
        }
    return body


async def fetch_branches(couch: CouchClient, db: str, doc_id: str, revs: Sequence[str]) -> list[Branch]:
    answers = await couch.bulk_get(
        db, [{"id": doc_id, "rev": rev} for rev in revs], revs=True, attachments=True
    )
    branches = []
    for answer in answers:
        for item in answer.get("docs", []):
            doc = item.get("ok")
            if doc is not None and not doc.get("_deleted"):
                branches.append(Branch(str(doc["_rev"]), doc, _history(doc)))
    return branches


def _common_ancestor(branches: Sequence[Branch]) -> str | None:
    shared = set(branches[0].history)
    for branch in branches[1:]:
        shared &= set(branch.history)
    # the newest shared revision: highest generation
    return max(shared, key=lambda rev: int(rev.split("-", 1)[0]), default=None)


async def examine(couch: CouchClient, db: str, doc: Mapping[str, Any]) -> ConflictReport | None:
    """Classify the conflict of ``doc`` (a winning leaf with ``_conflicts``); None when it is gone."""
    losers = [str(rev) for rev in doc.get("_conflicts") or []]
    if not losers:
        return None
    doc_id, winner = str(doc["_id"]), str(doc["_rev"])
    branches = await fetch_branches(couch, db, doc_id, [winner, *losers])
    if len(branches) < 2:
        return None
    branches.sort(key=lambda b: b.rev != winner)  # the winner first
    leaves = [b.rev for b in branches]
    ancestor_rev = _common_ancestor(branches)
    ancestor: dict[str, Any] | None = None
    if ancestor_rev is not None:
        try:
            ancestor = await couch.get_doc(db, doc_id, params={"rev": ancestor_rev, "attachments": "true"})
        except CouchNotFound:
            ancestor = None
    if ancestor is None:
        # Without the common ancestor nobody can tell who changed what: a person decides.
        differing = sorted({k for b in branches[1:] for k in changed_fields(branches[0].body, b.body)})
        return ConflictReport(doc_id, winner, leaves, "hard", differing, ancestor_rev, None, branches)
    changes = {b.rev: changed_fields(ancestor, b.body) for b in branches}
    by_field: dict[str, list[str]] = {}
    for rev, changed in changes.items():
        for name in changed:
            by_field.setdefault(name, []).append(rev)
    clashing = sorted(
        name
        for name, revs in by_field.items()
        if len({json.dumps(changes[rev][name], sort_keys=True) for rev in revs}) > 1
    )
    report = ConflictReport(
        doc_id,
        winner,
        leaves,
        "hard" if clashing else "soft",
        clashing or sorted(by_field),
        ancestor_rev,
        public_body(ancestor),
        branches,
        changes={rev: sorted(changed) for rev, changed in changes.items()},
    )
    if not clashing:
        report.merged = _merge(ancestor, branches, changes)
    return report


def _attachment_of(
    branches: Sequence[Branch], ancestor: Mapping[str, Any] | None, name: str
) -> dict[str, Any]:
    for source in [*(b.body for b in branches), ancestor or {}]:
        stub = (source.get("_attachments") or {}).get(name)
        if stub is not None and "data" in stub:
            return {"content_type": stub.get("content_type"), "data": stub["data"]}
    raise KeyError(name)


def _merge(
    ancestor: Mapping[str, Any], branches: Sequence[Branch], changes: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    merged = {k: v for k, v in ancestor.items() if k not in _BOOKKEEPING}
    photos = set((ancestor.get("_attachments") or {}).keys())
    for branch in branches:
        for name in changes[branch.rev]:
            if name.startswith("_attachments/"):
                photo = name.split("/", 1)[1]
                if name in _fields(branch.body):
                    photos.add(photo)
                else:
                    photos.discard(photo)
            elif name in branch.body:
                merged[name] = branch.body[name]
            else:
                merged.pop(name, None)
    merged["_id"] = ancestor["_id"]
    if photos:
        merged["_attachments"] = {name: _attachment_of(branches, ancestor, name) for name in sorted(photos)}
    return merged


def compose(
    branches: Sequence[Branch], choose: str | None, fields: Mapping[str, str] | None
) -> dict[str, Any]:
    """A leader's resolution: one whole branch, or each listed field taken from the named branch
    (fields not listed come from the winning branch). A photo's bytes come from the branch it was
    taken from: two branches may hold different photos under one name."""
    by_rev = {b.rev: b for b in branches}
    base = by_rev[choose] if choose is not None else branches[0]
    body = {k: v for k, v in base.body.items() if k not in _BOOKKEEPING}
    photo_from = dict.fromkeys(base.body.get("_attachments") or {}, base)
    for name, rev in ({} if choose is not None else (fields or {})).items():
        source = by_rev[rev]
        if name.startswith("_attachments/"):
            photo = name.split("/", 1)[1]
            if photo in (source.body.get("_attachments") or {}):
                photo_from[photo] = source
            else:
                photo_from.pop(photo, None)
        elif name in source.body:
            body[name] = source.body[name]
        else:
            body.pop(name, None)
    body["_id"] = base.body["_id"]
    if photo_from:
        body["_attachments"] = {
            name: _attachment_of([photo_from[name], *branches], None, name) for name in sorted(photo_from)
        }
    return body


class ConflictWriteError(CouchError):
    """CouchDB refused part of a resolution (someone wrote the document meanwhile)."""


def conflict_event(
    session: AsyncSession,
    conflict: Conflict,
    action: str,
    reason: str,
    *,
    actor: str = WORKER_ACTOR,
    **details: Any,
) -> None:
    """The case's audit entry for something that happened to one of its conflicts."""
    if conflict.case_id is None:
        return
    session.add(
        CaseEvent(
            case_id=conflict.case_id,
            actor=actor,
            action=action,
            reason=reason,
            details={"finding": conflict.doc_id, "conflict": conflict.id, **details},
        )
    )


async def record(
    session: AsyncSession,
    *,
    source_db: str,
    report: ConflictReport,
    grid: str | None,
    merge_rev: str | None = None,
) -> Conflict | None:
    """Keep a conflict in SQL (once per distinct set of leaves). A hard one is open, with a
    ``conflict_found`` event on its case; a soft one is ``merge_pending`` with the revision its
    merge will have (``merge_rev``), and gets its event when the merge is confirmed in CouchDB."""
    key = leaves_key(report.leaves)
    existing = (
        await session.exec(
            select(Conflict).where(Conflict.doc_id == report.doc_id, Conflict.leaves_key == key)
        )
    ).first()
    if existing is not None:
        return None
    # The branches moved on (another offline edit): an older open record of this document is void.
    # A pending merge is not (a leader's resolution recorded a moment ago included): whether it
    # landed is for the outbox to find out.
    await session.exec(
        update(Conflict)
        .where(col(Conflict.doc_id) == report.doc_id, col(Conflict.status) == ConflictStatus.OPEN)
        .values(status=ConflictStatus.SUPERSEDED, resolved_by=WORKER_ACTOR, resolved_at=utc_now())
    )
    # Locked (the worker's page holds it already): a leader moving the finding to another case
    # commits before this reads, or waits until the conflict is committed and moves it too.
    finding = (await lock_findings_by_id(session, [report.doc_id])).get(report.doc_id)
    case_id = finding.case_id if finding is not None else None
    case = await session.get(Case, case_id) if case_id else None
    soft = report.kind == ConflictKind.SOFT
    if soft and merge_rev is None:
        raise ValueError(f"a soft conflict of {report.doc_id} needs the revision of its merge")
    conflict = Conflict(
        doc_id=report.doc_id,
        source_db=source_db,
        case_id=case_id,
        grid_code=(case.grid_code or case.intake_grid) if case else grid,
        kind=report.kind,
        status=ConflictStatus.MERGE_PENDING if soft else ConflictStatus.OPEN,
        winner_rev=report.winner_rev,
        leaves_key=key,
        ancestor_rev=report.ancestor_rev,
        fields=report.fields,
        branches=[
            {
                "rev": b.rev,
                "author": b.body.get("author"),
                "device_id": b.body.get("device_id"),
                "changed": report.changes.get(b.rev, []),
                "body": public_body(b.body),
            }
            for b in report.branches
        ],
        ancestor=report.ancestor,
        merge_rev=merge_rev if soft else None,
    )
    session.add(conflict)
    await session.flush()
    if not soft:
        conflict_event(
            session,
            conflict,
            "conflict_found",
            "离线编辑冲突，需网格长裁决 / conflicting offline edits wait for the grid leader",
            kind=report.kind,
            fields=report.fields,
            leaves=report.leaves,
        )
    return conflict


async def settle_resolved_elsewhere(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> int:
    """Open conflicts whose document now arrives without ``_conflicts`` were settled by someone
    else (a tablet deleted the other branch, an operator resolved it in CouchDB): close them, so
    leaders are not asked to decide what is no longer in dispute."""
    settled = {
        str(row["id"]): str((row.get("doc") or {}).get("_rev") or "")
        for row in rows
        if row.get("doc") is not None and not (row.get("doc") or {}).get("_conflicts")
    }
    if not settled:
        return 0
    open_rows = (
        await session.exec(
            select(Conflict).where(
                col(Conflict.doc_id).in_(list(settled)), Conflict.status == ConflictStatus.OPEN
            )
        )
    ).all()
    closed = 0
    for conflict in open_rows:
        # Compare-and-set: a leader's resolution may have been recorded since the read (PostgreSQL
        # runs the two side by side); that row is the outbox's now.
        rev = settled[conflict.doc_id]
        changed = await session.exec(
            update(Conflict)
            .where(col(Conflict.id) == conflict.id, col(Conflict.status) == ConflictStatus.OPEN)
            .values(
                status=ConflictStatus.SUPERSEDED,
                result_rev=rev,
                resolved_by=WORKER_ACTOR,
                resolved_at=utc_now(),
            )
        )
        if changed.rowcount == 1:
            closed += 1
            conflict_event(session, conflict, "conflict_superseded", SETTLED_ELSEWHERE, rev=rev)
    return closed
