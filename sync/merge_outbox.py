"""Soft conflict merges reach CouchDB through an outbox in SQL, so none loses its record.

The page that finds a soft conflict records it as ``merge_pending`` in its own transaction (with
its checkpoint), together with the revision its merge will have. The merge's revision ids follow
from what it merges (the doc, the winning revision, the leaves, the merged body), and it is
written with ``new_edits=false``: it is the same revision whoever writes it and however often, and
``_revs_diff`` tells whether it landed. After the page's commit a worker settles each pending row:

1. **claim** it (compare-and-set on the row: still pending, and unclaimed, lapsed or ours), so one
   worker writes at a time; a crashed writer's claim lapses after the worker lease;
2. **decide** from what CouchDB holds now:
   - the planned revision is there: the write landed but its mark did not → **merged**;
   - the same branches are still in conflict: write the merge now → **merged**;
   - other branches and no planned revision (a tablet edited again, someone settled it in
     CouchDB) → **superseded**; a document still in conflict is a **new conflict**, recorded
     like any other (merged through this outbox, or left for the leader);
   - the document is gone → **superseded**;
3. **mark** it, with the case event, in one transaction that only a row still pending passes:
   whoever marks first, there is one mark and one event.

A row whose settling failed (CouchDB away, SQL away, the worker killed) stays pending and is
settled again on the feed's later passes. One that CouchDB keeps refusing is given to the grid
leader after ``MAX_MERGE_ATTEMPTS`` tries instead of being retried for ever.

A grid leader's resolution of a hard conflict takes the same road (``record_resolution``, then
``settle_claimed`` in the same request): the decision (who, which branch or fields, why) and its
planned revision are committed first, so a request that dies after CouchDB stored the resolution,
or before, leaves a pending row that a worker completes in the leader's name. Its revisions are
rebuilt from the branches (immutable leaves) and the decision, so the row holds no photo data. One
CouchDB refuses goes straight back to the leader.
"""

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.db import SessionMaker
from server.db.models import Conflict, ConflictKind, ConflictStatus, Finding, utc_now
from sync.conflicts import (
    SETTLED_ELSEWHERE,
    Branch,
    ConflictReport,
    ConflictWriteError,
    compose,
    conflict_event,
    examine,
    fetch_branches,
    leaves_key,
    record,
)
from sync.couch import CouchClient, CouchError, CouchNotFound, CouchStatusError
from sync.merge import WORKER_ACTOR

__all__ = [
    "MAX_MERGE_ATTEMPTS",
    "MergePlan",
    "landed",
    "plan_merge",
    "record_resolution",
    "resolution_plan",
    "settle_claimed",
    "settle_pending",
    "write_plan",
]

log = logging.getLogger("gridpatrol.merge_outbox")
MAX_MERGE_ATTEMPTS = 5
_MERGED_REASON = "离线编辑冲突已自动合并 / offline edits merged automatically"


@dataclass(frozen=True)
class MergePlan:
    """A soft merge as the revisions to store: the merged body on the winning branch and a
    tombstone on every losing leaf."""

    doc_id: str
    merge_rev: str
    docs: list[dict[str, Any]]


def _rev_hash(*parts: object) -> str:
    raw = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def _child_of(branch: Branch, rev_hash: str) -> dict[str, Any]:
    generation = int(branch.rev.split("-", 1)[0]) + 1
    ancestors = [rev.split("-", 1)[1] for rev in branch.history]
    return {
        "_rev": f"{generation}-{rev_hash}",
        "_revisions": {"start": generation, "ids": [rev_hash, *ancestors]},
    }


def _plan(doc_id: str, branches: list[Branch], leaves: list[str], body: dict[str, Any]) -> MergePlan:
    """``body`` as a child of the first branch (the winner) and a tombstone on every other leaf,
    their ids derived from what they settle: the same plan whoever makes it and however often."""
    winner, *losers = branches
    merged_hash = _rev_hash(doc_id, winner.rev, sorted(leaves), body)
    docs = [{**body, "_id": doc_id, **_child_of(winner, merged_hash)}]
    docs += [
        {"_id": doc_id, "_deleted": True, **_child_of(loser, _rev_hash(merged_hash, loser.rev))}
        for loser in losers
    ]
    return MergePlan(doc_id, str(docs[0]["_rev"]), docs)


def plan_merge(report: ConflictReport) -> MergePlan:
    """The revisions of a soft conflict's merge (``report.merged``; ``examine`` puts the winner
    first). The merged revision is one generation above the winner, so it wins."""
    if report.merged is None:
        raise ValueError(f"{report.doc_id}: only a soft conflict has a merge")
    return _plan(report.doc_id, list(report.branches), list(report.leaves), report.merged)


async def resolution_plan(
    couch: CouchClient, conflict: Conflict, choose: str | None, fields: dict[str, str] | None
) -> tuple[MergePlan, dict[str, Any]]:
    """A leader's resolution of ``conflict`` (one whole branch, or fields taken from named
    branches) as the revisions to store, and the resolved body (to validate)."""
    leaves = conflict.leaves_key.split(" ")
    branches = await fetch_branches(couch, conflict.source_db, conflict.doc_id, leaves)
    branches.sort(key=lambda b: b.rev != conflict.winner_rev)
    body = compose(branches, choose, fields)
    return _plan(conflict.doc_id, branches, leaves, body), body


async def write_plan(couch: CouchClient, db: str, plan: MergePlan) -> None:
    """Store the plan's revisions (a no-op for those already there). ``ConflictWriteError`` when
    CouchDB refused any of them."""
    answers = await couch.bulk_docs(db, plan.docs, new_edits=False)
    failed = [a for a in answers if "error" in a]
    if failed:
        raise ConflictWriteError(f"CouchDB refused the merge of {plan.doc_id}: {failed}")


async def landed(couch: CouchClient, db: str, doc_id: str, rev: str) -> bool:
    """CouchDB holds this revision of the document."""
    diff = await couch.revs_diff(db, {doc_id: [rev]})
    return rev not in (diff.get(doc_id) or {}).get("missing", [])


@dataclass
class _Decision:
    status: str
    """merged (resolved for a leader's decision), superseded, or open (the merge can no longer be
    made: a leader decides)."""
    rev: str | None = None
    report: ConflictReport | None = None
    """For open: the conflict as it stands now; for superseded: a new conflict of the document."""


async def _decide(
    couch: CouchClient,
    conflict: Conflict,
    examined: dict[tuple[str, str], ConflictReport],
    planned: MergePlan | None = None,
) -> _Decision:
    db, doc_id = conflict.source_db, conflict.doc_id
    done = ConflictStatus.MERGED if conflict.resolution is None else ConflictStatus.RESOLVED
    if conflict.merge_rev is not None and await landed(couch, db, doc_id, conflict.merge_rev):
        return _Decision(done, conflict.merge_rev)
    try:
        current = await couch.get_doc(db, doc_id, params={"conflicts": "true"})
    except CouchNotFound:
        return _Decision(ConflictStatus.SUPERSEDED)
    leaves = [str(current["_rev"]), *(str(rev) for rev in current.get("_conflicts") or [])]
    if leaves_key(leaves) != conflict.leaves_key:
        newer = await examine(couch, db, current) if len(leaves) > 1 else None
        return _Decision(ConflictStatus.SUPERSEDED, str(current["_rev"]), newer)
    if conflict.resolution is not None:
        decided = conflict.resolution
        plan = (
            planned
            or (
                await resolution_plan(
                    couch, conflict, _str_or_none(decided.get("choose")), _fields_of(decided)
                )
            )[0]
        )
        await write_plan(couch, db, plan)
        return _Decision(ConflictStatus.RESOLVED, plan.merge_rev)
    report = examined.get((doc_id, conflict.leaves_key)) or await examine(couch, db, current)
    if report is None:  # the branches went between the two reads: next pass sees what is left
        raise CouchError(f"the branches of {doc_id} changed while they were read")
    if report.merged is None:  # the ancestor was compacted away since: nobody can merge it now
        return _Decision(ConflictStatus.OPEN, report=report)
    plan = plan_merge(report)
    await write_plan(couch, db, plan)
    return _Decision(ConflictStatus.MERGED, plan.merge_rev)


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def _fields_of(resolution: dict[str, Any]) -> dict[str, str] | None:
    fields = resolution.get("fields")
    return {str(k): str(v) for k, v in fields.items()} if isinstance(fields, dict) else None


async def _claim(sessions: SessionMaker, conflict_id: int, holder: str, lease_s: float) -> bool:
    now = utc_now()
    async with sessions() as session, session.begin():
        claimed = await session.exec(
            update(Conflict)
            .where(
                col(Conflict.id) == conflict_id,
                col(Conflict.status) == ConflictStatus.MERGE_PENDING,
                or_(
                    col(Conflict.claimed_by).is_(None),
                    col(Conflict.claimed_by) == holder,
                    col(Conflict.claimed_until) < now,
                ),
            )
            .values(
                claimed_by=holder,
                claimed_until=now + timedelta(seconds=lease_s),
                attempts=col(Conflict.attempts) + 1,
            )
        )
        return claimed.rowcount == 1


async def _mark(sessions: SessionMaker, conflict: Conflict, decision: _Decision) -> str | None:
    """Settle the row if it is still pending (compare-and-set), with its event; the outcome's name,
    or None when another worker settled it first."""
    now = utc_now()
    values: dict[str, Any] = {"status": decision.status, "claimed_by": None, "claimed_until": None}
    leader = str(conflict.resolution["by"]) if conflict.resolution is not None else None
    if decision.status == ConflictStatus.OPEN:
        assert decision.report is not None
        values |= {"kind": ConflictKind.HARD, "fields": decision.report.fields, "last_error": None}
    else:
        resolved_by = leader if decision.status == ConflictStatus.RESOLVED and leader else WORKER_ACTOR
        values |= {"result_rev": decision.rev, "resolved_by": resolved_by, "resolved_at": now}
    async with sessions() as session, session.begin():
        marked = await session.exec(
            update(Conflict)
            .where(col(Conflict.id) == conflict.id, col(Conflict.status) == ConflictStatus.MERGE_PENDING)
            .values(**values)
        )
        if marked.rowcount != 1:
            return None
        if decision.status == ConflictStatus.RESOLVED:
            await _resolved_event(session, conflict, decision.rev)
            return "conflict_resolved"
        if decision.status == ConflictStatus.MERGED:
            conflict_event(
                session,
                conflict,
                "conflict_merged",
                _MERGED_REASON,
                kind=conflict.kind,
                fields=list(conflict.fields),
                leaves=conflict.leaves_key.split(" "),
                result_rev=decision.rev,
            )
            return "conflict_merged"
        if decision.status == ConflictStatus.OPEN:
            conflict_event(
                session,
                conflict,
                "conflict_found",
                "共同祖先版本已不存在，无法自动合并，需网格长裁决 / the common ancestor is gone, so the "
                "edits cannot be merged automatically; the grid leader decides",
                kind=ConflictKind.HARD,
                fields=decision.report.fields if decision.report else [],
                leaves=conflict.leaves_key.split(" "),
            )
            return "conflict_merge_to_leader"
        conflict_event(session, conflict, "conflict_superseded", SETTLED_ELSEWHERE, rev=decision.rev)
        if decision.report is not None:
            newer = decision.report
            try:
                async with session.begin_nested():
                    await record(
                        session,
                        source_db=conflict.source_db,
                        report=newer,
                        grid=conflict.grid_code,
                        merge_rev=plan_merge(newer).merge_rev if newer.merged is not None else None,
                    )
            except IntegrityError:  # a page recorded the same new conflict at the same moment
                log.info("new conflict of %s already recorded", conflict.doc_id)
        return "conflict_superseded"


async def _resolved_event(session: AsyncSession, conflict: Conflict, rev: str | None) -> None:
    """The leader's resolution landed: the audit entry in their name, and the finding's status
    document is due again (its tablets see the decision)."""
    decided = conflict.resolution or {}
    conflict_event(
        session,
        conflict,
        "conflict_resolved",
        str(decided.get("reason") or "网格长裁决冲突 / conflict resolved by the grid leader"),
        actor=str(decided.get("by")),
        choose=decided.get("choose"),
        fields=decided.get("fields"),
        result_rev=rev,
    )
    await session.exec(
        update(Finding)
        .where(col(Finding.doc_id) == conflict.doc_id)
        .values(status_version=col(Finding.status_version) + 1)
    )


async def _failed(sessions: SessionMaker, conflict: Conflict, holder: str, error: CouchError) -> str:
    """Give the claim back with the reason; a merge CouchDB refused ``MAX_MERGE_ATTEMPTS`` times
    goes to the grid leader (a CouchDB that is away only delays it)."""
    # CouchDB said no (a per-document refusal, a 4xx); an error of its own (5xx) or no answer only
    # delays the merge.
    refused = isinstance(error, ConflictWriteError) or (
        isinstance(error, CouchStatusError) and error.status < 500
    )
    async with sessions() as session, session.begin():
        row = await session.get(Conflict, conflict.id)
        if row is None or row.status != ConflictStatus.MERGE_PENDING or row.claimed_by != holder:
            return "conflict_merge_retry"
        row.claimed_by, row.claimed_until = None, None
        row.last_error = f"{type(error).__name__}: {error}"[:2000]
        if not refused:
            row.attempts -= 1  # the claim counted a try; a CouchDB that is away is not a refusal
        if refused and row.resolution is not None:  # the leader decides again, now
            by = str(row.resolution.get("by"))
            row.status, row.resolution, row.merge_rev = ConflictStatus.OPEN, None, None
            conflict_event(
                session,
                row,
                "conflict_resolution_refused",
                "文档库拒绝了网格长的裁决，请重新裁决 / the document store refused the grid "
                "leader's resolution; decide again",
                leader=by,
                error=row.last_error,
            )
            session.add(row)
            return "conflict_resolution_refused"
        give_up = refused and row.attempts >= MAX_MERGE_ATTEMPTS
        if give_up:
            row.status = ConflictStatus.OPEN
            conflict_event(
                session,
                row,
                "conflict_found",
                f"自动合并写回 {row.attempts} 次失败，需网格长裁决 / the automatic merge could not be "
                f"written back after {row.attempts} tries; the grid leader decides",
                kind=row.kind,
                fields=list(row.fields),
                error=row.last_error,
            )
        session.add(row)
    return "conflict_merge_to_leader" if give_up else "conflict_merge_retry"


async def _settle(
    sessions: SessionMaker,
    couch: CouchClient,
    conflict: Conflict,
    holder: str,
    examined: dict[tuple[str, str], ConflictReport],
    planned: MergePlan | None = None,
) -> str | None:
    """Decide and mark one claimed row; the outcome's name (None: another writer marked it)."""
    try:
        decision = await _decide(couch, conflict, examined, planned)
    except CouchError as exc:
        log.warning("merge of %s not settled yet: %s", conflict.doc_id, exc)
        return await _failed(sessions, conflict, holder, exc)
    return await _mark(sessions, conflict, decision)


async def record_resolution(
    sessions: SessionMaker,
    conflict_id: int,
    plan: MergePlan,
    resolution: dict[str, Any],
    *,
    holder: str,
    lease_s: float,
) -> Conflict | None:
    """Commit a leader's decision on an open conflict as a pending merge claimed by ``holder``
    (compare-and-set: None when the conflict is no longer open)."""
    now = utc_now()
    async with sessions() as session, session.begin():
        recorded = await session.exec(
            update(Conflict)
            .where(col(Conflict.id) == conflict_id, col(Conflict.status) == ConflictStatus.OPEN)
            .values(
                status=ConflictStatus.MERGE_PENDING,
                merge_rev=plan.merge_rev,
                resolution=resolution,
                claimed_by=holder,
                claimed_until=now + timedelta(seconds=lease_s),
                attempts=col(Conflict.attempts) + 1,
                last_error=None,
            )
        )
        if recorded.rowcount != 1:
            return None
        return await session.get(Conflict, conflict_id)


async def settle_claimed(
    sessions: SessionMaker, couch: CouchClient, conflict: Conflict, holder: str, plan: MergePlan
) -> str | None:
    """Settle one row ``holder`` has claimed with ``record_resolution`` and ``plan`` (saves reading
    the branches and their photos again); the outcome's name (None if another writer marked it
    first: read the row for what happened)."""
    return await _settle(sessions, couch, conflict, holder, {}, plan)


async def settle_pending(
    sessions: SessionMaker,
    couch: CouchClient,
    db: str,
    *,
    holder: str,
    lease_s: float,
    examined: Iterable[ConflictReport] = (),
) -> dict[str, int]:
    """Settle every pending merge of one database that no other worker holds; returns the count
    of each outcome. ``examined``: conflicts this worker has just classified (saves reading their
    branches again)."""
    by_leaves = {(r.doc_id, leaves_key(r.leaves)): r for r in examined}
    counts: dict[str, int] = {}
    tried: set[int] = set()
    while True:  # a superseded merge may record a new one: settle that too, each row once
        now = utc_now()
        async with sessions() as session:
            rows = (
                await session.exec(
                    select(Conflict)
                    .where(
                        col(Conflict.source_db) == db,
                        col(Conflict.status) == ConflictStatus.MERGE_PENDING,
                        col(Conflict.id).not_in(tried),
                        or_(col(Conflict.claimed_until).is_(None), col(Conflict.claimed_until) < now),
                    )
                    .order_by(col(Conflict.id))
                )
            ).all()
        if not rows:
            return counts
        for conflict in rows:
            assert conflict.id is not None
            tried.add(conflict.id)
            if not await _claim(sessions, conflict.id, holder, lease_s):
                continue  # another worker is on it
            outcome = await _settle(sessions, couch, conflict, holder, by_leaves)
            if outcome is not None:
                counts[outcome] = counts.get(outcome, 0) + 1
