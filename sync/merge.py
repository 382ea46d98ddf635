"""The merge engine: a page of changes from a grid database becomes findings and case records in SQL.

``apply_page`` runs inside the caller's transaction (the same one that moves the checkpoint) and
is idempotent by (document id, revision): replaying a page does nothing. It is set-based: one
query for the revisions already applied, one for the findings already known, one for the open
cases that new findings may join, then bulk inserts.

Joining: a new finding joins an open (not closed) case of the same concern in the same grid when
one of that case's live findings lies within the concern's ``radius_m`` and was *received* at most
``join_window_h`` hours earlier (or later). Receive time is the server's: when the gateway stored
the finding (``sync.receipts``), else the worker's clock when it first applies it; decisions follow
the feed's sequence order; the device's ``observed_at`` is shown and never used, so a tablet whose
clock is a year off changes nothing. Among several
matches the nearest wins (then the earliest received, then the smallest id): deterministic.
On PostgreSQL the page's (grid, concern) scopes are locked before the search, so two workers
never both open a case for the same problem (``sync._joins.lock_join_scopes``).
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from field_schema import DocumentInvalid, Taxonomy, upgrade, validate_document
from geo import GridIndex, to_wgs84_many
from server.db.locks import lock_findings_by_id
from server.db.models import (
    Case,
    CaseEvent,
    CaseLink,
    CaseSearch,
    CaseState,
    Finding,
    FindingRevision,
    new_case_id,
    search_content,
    search_scope,
    utc_now,
)
from sync._joins import JoinCache, JoinEvidence, _JoinIndex, _Member, lock_join_scopes
from sync._known import refuse_clashes, update_finding, withdraw_finding
from sync._rows import WORKER_ACTOR, Change, ChangeOutcome, bulk_insert, event_row, finding_fields, link_row
from sync.case_numbers import allocate_case_numbers
from sync.case_search import extend_case_search
from sync.receipts import forget_receipts, pushers, received_times

__all__ = [
    "MERGED_TYPES",
    "WORKER_ACTOR",
    "ChangeOutcome",
    "JoinCache",
    "JoinEvidence",
    "apply_change",
    "apply_page",
]

MERGED_TYPES = frozenset({"hazard"})


def _changes_of(rows: Iterable[Mapping[str, Any]]) -> tuple[list[Change], list[ChangeOutcome]]:
    """The rows that concern findings, in feed order (last row wins for a repeated id)."""
    kept: dict[str, Change] = {}
    skipped: list[ChangeOutcome] = []
    for row in rows:
        doc_id = str(row["id"])
        doc: Mapping[str, Any] | None = row.get("doc")
        if doc_id.startswith("_design/") or doc is None:
            skipped.append(ChangeOutcome("skipped", doc_id=doc_id))
            continue
        deleted = bool(row.get("deleted") or doc.get("_deleted"))
        if not deleted and doc.get("type") not in MERGED_TYPES:
            skipped.append(ChangeOutcome("skipped", doc_id=doc_id))
            continue
        rev = str(doc.get("_rev") or row["changes"][0]["rev"])
        kept.pop(doc_id, None)
        kept[doc_id] = Change(doc_id, rev, str(row.get("seq", "")), deleted, doc)
    return list(kept.values()), skipped


async def _applied(session: AsyncSession, changes: Sequence[Change]) -> set[tuple[str, str]]:
    if not changes:
        return set()
    pairs = [(c.doc_id, c.rev) for c in changes]
    found: set[tuple[str, str]] = set()
    for start in range(0, len(pairs), 500):
        chunk = pairs[start : start + 500]
        rows = await session.exec(
            select(FindingRevision.doc_id, FindingRevision.rev).where(
                col(FindingRevision.doc_id).in_([d for d, _ in chunk])
            )
        )
        wanted = set(chunk)
        found.update(pair for pair in rows.all() if pair in wanted)
    return found


@dataclass
class _New:
    change: Change
    fields: dict[str, Any]
    grid: str | None = None
    micro_grid: str | None = None
    assignment: str = "unassigned"
    candidates: list[str] = field(default_factory=list)
    received_at: datetime | None = None
    """When the gateway received it (``sync.receipts``); None: the page's own time."""


async def apply_page(
    session: AsyncSession,
    *,
    source_db: str,
    source_grid: str | None,
    rows: Sequence[Mapping[str, Any]],
    grid_index: GridIndex | None,
    taxonomy: Taxonomy,
    timezone: str = "Asia/Shanghai",
    now: datetime | None = None,
    join_cache: "JoinCache | None" = None,
) -> list[ChangeOutcome]:
    """Apply one page of ``_changes`` rows (``include_docs``) in the caller's transaction.

    ``join_cache`` keeps join candidates between pages (a worker passes its own and clears it when
    the transaction fails); without one, candidates are read afresh.
    """
    join_cache = join_cache if join_cache is not None else JoinCache()
    changes, outcomes = _changes_of(rows)
    # Every finding of the page is locked before anything is read or written (server/db/locks.py),
    # those whose revision is known already included: the page may record their conflicts.
    known = await lock_findings_by_id(session, [c.doc_id for c in changes])
    applied = await _applied(session, changes)
    outcomes += [ChangeOutcome("duplicate", doc_id=c.doc_id) for c in changes if (c.doc_id, c.rev) in applied]
    changes = [c for c in changes if (c.doc_id, c.rev) not in applied]

    # First what each change is (nothing written yet), so the join scopes can be locked before
    # any row is: the locks come first in every page's transaction, always in the same order.
    plan = _classify(changes, known, source_db, taxonomy)
    steps, kept, fresh = plan.steps, plan.kept, plan.fresh
    if fresh:
        _to_wgs84_many(fresh)
        _assign(fresh, grid_index)
        await lock_join_scopes(session, {(n.grid, str(n.fields["concern_code"])) for n in fresh if n.grid})
    # Stamped after the locks: every case a new finding may join was received before this.
    now = now or utc_now()
    join_cache.own_stamps.add(now)
    revising = [(step[0].doc_id, step[0].rev) for step in steps if not isinstance(step, ChangeOutcome)]
    pushed_by = await pushers(session, revising)
    await _take_receipts(session, fresh, rows, now)  # then forgotten
    if plan.clashes:
        outcomes += await refuse_clashes(session, plan.clashes, source_db, now)

    for step in steps:
        if isinstance(step, ChangeOutcome):
            outcomes.append(step)
            continue
        change, known_finding, revised = step
        if known_finding.case_id is not None:
            join_cache.touched(known_finding.case_id)
        by = pushed_by.get((change.doc_id, change.rev))
        if revised is None:
            outcomes.append(await withdraw_finding(session, known_finding, change.rev, now, pushed_by=by))
        else:
            outcomes.append(
                await update_finding(session, known_finding, revised, change.rev, taxonomy, now, pushed_by=by)
            )
    if fresh:
        outcomes += await _create_or_join(
            session, source_db, source_grid, fresh, taxonomy, timezone, now, join_cache
        )
    if kept:
        revisions = [
            {"doc_id": c.doc_id, "rev": c.rev, "source_db": source_db, "seq": c.seq, "applied_at": now}
            for c in kept
        ]
        await bulk_insert(session, FindingRevision, revisions)
    return outcomes


_Step = tuple[Change, Finding, Mapping[str, Any] | None] | ChangeOutcome
"""A revision of a known finding (None: withdrawn), or an outcome decided without writing."""


@dataclass
class _Plan:
    steps: list[_Step] = field(default_factory=list)
    kept: list[Change] = field(default_factory=list)
    """Changes whose revision is recorded as applied."""
    fresh: list[_New] = field(default_factory=list)
    clashes: list[tuple[Change, Finding]] = field(default_factory=list)


def _classify(
    changes: Sequence[Change], known: Mapping[str, Finding], source_db: str, taxonomy: Taxonomy
) -> _Plan:
    plan = _Plan()
    for change in changes:
        finding = known.get(change.doc_id)
        if finding is not None and (
            finding.source_db != source_db
            or (not change.deleted and change.doc.get("author") != finding.author)
        ):
            # The same id written into another database (the gateway places every revision in
            # its document's home; a volunteer of another grid cannot see this one), or a branch
            # by another author (a creation that raced another's, written in the same instant):
            # never let it change or withdraw somebody else's finding.
            plan.clashes.append((change, finding))
        elif change.deleted and finding is None:
            plan.steps.append(ChangeOutcome("skipped", doc_id=change.doc_id))
        elif change.deleted and finding is not None and finding.deleted:
            # A tombstone on a tombstone (made bare by `gridpatrol tombstones`, or deleted again):
            # withdrawing it twice would tell the case's people twice and write its status again.
            plan.steps.append(ChangeOutcome("skipped", finding.case_id, "already withdrawn", change.doc_id))
        elif change.deleted and finding is not None:
            plan.steps.append((change, finding, None))  # withdrawn
        else:
            try:
                validate_document(change.doc, taxonomy)
            except DocumentInvalid as exc:
                # The gateway refuses these at push; one can still arrive written straight to CouchDB.
                plan.steps.append(ChangeOutcome("invalid", detail=str(exc), doc_id=change.doc_id))
                continue
            current = upgrade(change.doc)
            if finding is None:
                plan.fresh.append(_New(change, finding_fields(current, taxonomy, convert=False)))
            else:
                plan.steps.append((change, finding, current))
        plan.kept.append(change)
    return plan


async def apply_change(
    session: AsyncSession,
    *,
    source_db: str,
    source_grid: str | None,
    row: Mapping[str, Any],
    grid_index: GridIndex | None,
    taxonomy: Taxonomy,
    timezone: str = "Asia/Shanghai",
) -> ChangeOutcome:
    """One change on its own (a page of one)."""
    outcomes = await apply_page(
        session,
        source_db=source_db,
        source_grid=source_grid,
        rows=[row],
        grid_index=grid_index,
        taxonomy=taxonomy,
        timezone=timezone,
    )
    return outcomes[0]


def _to_wgs84_many(fresh: Sequence[_New]) -> None:
    """WGS-84 for the page's new findings, GCJ-02 (most phones) converted as one array."""
    lons, lats = to_wgs84_many(
        [n.fields["reported_lon"] for n in fresh],
        [n.fields["reported_lat"] for n in fresh],
        [n.fields["reported_datum"] for n in fresh],
    )
    for new, lon, lat in zip(fresh, lons, lats, strict=True):
        new.fields["lon"], new.fields["lat"] = lon, lat


def _assign(fresh: Sequence[_New], grid_index: GridIndex | None) -> None:
    if grid_index is None:
        return
    batch = grid_index.assign_batch(
        [n.fields["lon"] for n in fresh],
        [n.fields["lat"] for n in fresh],
        [n.fields["accuracy_m"] for n in fresh],
    )
    for i, new in enumerate(fresh):
        assignment = batch[i]
        new.grid, new.micro_grid = assignment.grid, assignment.micro_grid
        new.assignment = str(assignment.status)
        new.candidates = list(assignment.candidates)


def _decide(
    fresh: Sequence[_New], index: _JoinIndex, now: datetime
) -> list[tuple[_New, str, JoinEvidence | None]]:
    """Join or open, finding by finding in feed order; each new finding is a candidate for the next.
    Windows compare receive times (the gateway's, else ``now``)."""
    decisions: list[tuple[_New, str, JoinEvidence | None]] = []
    for new in fresh:
        concern = new.fields["concern_code"]
        received = new.received_at or now
        f = new.fields
        evidence = index.match(new.grid, concern, f["lat"], f["lon"], received) if new.grid else None
        case_id = evidence.case_id if evidence else new_case_id(now)
        decisions.append((new, case_id, evidence))
        if new.grid:
            index.add(
                new.grid,
                concern,
                _Member(new.change.doc_id, case_id, f["author"], f["lat"], f["lon"], received),
            )
    return decisions


async def _all_open(session: AsyncSession, case_ids: Sequence[str]) -> bool:
    found = 0
    for start in range(0, len(case_ids), 500):
        rows = await session.exec(
            select(Case.id).where(
                col(Case.id).in_(case_ids[start : start + 500]), col(Case.state) != CaseState.CLOSED
            )
        )
        found += len(rows.all())
    return found == len(case_ids)


async def _number_new_cases(
    session: AsyncSession,
    decisions: Sequence[tuple[_New, str, JoinEvidence | None]],
    timezone: str,
    now: datetime,
) -> dict[str, str]:
    """Case numbers of the cases the page opens, consecutive per grid in feed order."""
    opened: dict[str | None, list[str]] = defaultdict(list)
    for new, case_id, evidence in decisions:
        if evidence is None:
            opened[new.grid].append(case_id)
    numbers: dict[str, str] = {}
    for grid in sorted(opened, key=lambda g: g or ""):
        ids = opened[grid]
        allocated = await allocate_case_numbers(session, grid, len(ids), zone=timezone, now=now)
        numbers.update(zip(ids, allocated, strict=True))
    return numbers


async def _create_or_join(
    session: AsyncSession,
    source_db: str,
    source_grid: str | None,
    fresh: Sequence[_New],
    taxonomy: Taxonomy,
    timezone: str,
    now: datetime,
    join_cache: "JoinCache",
) -> list[ChangeOutcome]:
    probes = [
        (n.grid, str(n.fields["concern_code"]), float(n.fields["lat"]), float(n.fields["lon"]))
        for n in fresh
        if n.grid is not None
    ]
    pairs = {(g, c) for g, c, _, _ in probes}
    lat0 = probes[0][2] if probes else 31.0
    for _attempt in range(3):
        earliest = min((n.received_at for n in fresh if n.received_at), default=None)
        index = await join_cache.index_for(session, taxonomy, pairs, lat0, now, earliest)
        decisions = _decide(fresh, index, now)
        opening = {case_id for _, case_id, e in decisions if e is None}
        chosen = sorted({e.case_id for _, _, e in decisions if e is not None} - opening)
        if not chosen or await _all_open(session, chosen):
            break
        join_cache.clear()  # someone closed a case without touching it: start from SQL again
    join_cache.own_stamps.add(now)
    numbers = await _number_new_cases(session, decisions, timezone, now)
    cases: list[dict[str, Any]] = []
    findings: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    outcomes: list[ChangeOutcome] = []
    joined_cases: set[str] = set()
    page_notes: dict[str, list[str]] = defaultdict(list)
    scopes: dict[str, str] = {}
    for new, case_id, evidence in decisions:
        f, doc_id = new.fields, new.change.doc_id
        page_notes[case_id].append(f["note"])
        if evidence is None:
            scopes[case_id] = search_scope(new.grid, source_grid)
            cases.append(
                {
                    "id": case_id,
                    "case_no": numbers[case_id],
                    "grid_code": new.grid,
                    "micro_grid_code": new.micro_grid,
                    "intake_grid": source_grid,
                    "assignment": new.assignment,
                    "assignment_candidates": new.candidates,
                    "concern_code": f["concern_code"],
                    "severity": f["severity"],
                    "state": CaseState.PROBLEM_FOUND,
                    "lat": f["lat"],
                    "lon": f["lon"],
                    "summary": f["note"][:500],
                    "created_at": now,
                    "updated_at": now,
                }
            )
            events.append(
                event_row(
                    case_id,
                    "created",
                    now,
                    reason="新发现 / new finding",
                    details={"finding": doc_id, "rev": new.change.rev, "author": f["author"]},
                    to_state=str(CaseState.PROBLEM_FOUND),
                )
            )
            links.append(link_row(doc_id, case_id, "created", f["author"], now))
            outcomes.append(ChangeOutcome("created", case_id, doc_id=doc_id))
        else:
            joined_cases.add(case_id)
            scopes.setdefault(case_id, search_scope(new.grid, source_grid))  # a join stays in its grid
            details = {
                "finding": doc_id,
                "rev": new.change.rev,
                "author": f["author"],
                "matched_finding": evidence.matched_finding,
                "matched_author": evidence.matched_author,
                "distance_m": evidence.distance_m,
                "gap_s": evidence.gap_s,
                "radius_m": evidence.radius_m,
                "window_h": evidence.window_h,
            }
            events.append(
                event_row(
                    case_id,
                    "finding_joined",
                    now,
                    reason="同一问题的新记录 / same problem seen again",
                    details=details,
                )
            )
            links.append(link_row(doc_id, case_id, "joined", f["author"], now, evidence))
            outcomes.append(ChangeOutcome("joined", case_id, doc_id=doc_id))
        findings.append(
            {
                "doc_id": doc_id,
                "source_db": source_db,
                "rev": new.change.rev,
                "case_id": case_id,
                "received_at": new.received_at or now,
                "deleted": False,
                "status_version": 1,
                "status_published_version": 0,
                "status_doc_rev": None,
                **f,
            }
        )
    search_rows = [
        {
            "scope_grid": scopes[c["id"]],
            "case_id": c["id"],
            "content": search_content(c["case_no"], c["summary"], page_notes[c["id"]]),
        }
        for c in cases
    ]
    if cases:
        await bulk_insert(session, Case, cases)
        await bulk_insert(session, CaseSearch, search_rows)
    await bulk_insert(session, Finding, findings)
    await bulk_insert(session, CaseLink, links)
    await bulk_insert(session, CaseEvent, events)
    if joined_cases:
        await _touch_cases(session, joined_cases, now)
        await extend_case_search(
            session, {(scopes[c], c): page_notes[c] for c in sorted(joined_cases) if c not in numbers}
        )
    return outcomes


async def _touch_cases(session: AsyncSession, case_ids: Iterable[str], now: datetime) -> None:
    ids = sorted(case_ids)
    for start in range(0, len(ids), 500):
        await session.exec(
            update(Case).where(col(Case.id).in_(ids[start : start + 500])).values(updated_at=now)
        )


async def _take_receipts(
    session: AsyncSession, fresh: Sequence[_New], rows: Sequence[Mapping[str, Any]], now: datetime
) -> None:
    """New findings take their gateway receive time; the page's receipts are then done with."""
    if fresh:
        receipts = await received_times(session, [n.change.doc_id for n in fresh], now)
        for new in fresh:
            new.received_at = receipts.get(new.change.doc_id)
    if rows:
        await forget_receipts(session, list(dict.fromkeys(str(row["id"]) for row in rows)))
