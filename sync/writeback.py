"""Write-back: what happened to a finding goes to CouchDB as a ``case_status`` document.

The SQL row is the outbox: ``status_version`` moves on every change that the tablet should see,
``status_published_version`` records what CouchDB has. Publishing is idempotent (one document id
per finding, written with its current revision), so a crash between CouchDB and SQL only means
the same status is written again.

Workers that share the feeds share the outbox the same way: each publishes the statuses of the
findings whose database it holds the lease of (``others`` are left alone), so two workers do not write the
same status document at once (a conflict each time, then a read and a second write).
"""

from collections.abc import Collection
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select

from server.db import SessionMaker
from server.db.models import CASE_STATE_LABELS, Case, CaseState, Finding, utc_now
from sync.couch import CouchClient, CouchConflict, CouchNotFound

__all__ = ["STATUS_BATCH", "STATUS_PREFIX", "publish_statuses", "status_doc_id"]

STATUS_PREFIX = "status:"
STATUS_BATCH = 200


def status_doc_id(finding_id: str) -> str:
    return STATUS_PREFIX + finding_id


def _status_body(finding: Finding, case: Case | None) -> dict[str, Any]:
    state = CaseState(case.state) if case else CaseState.PROBLEM_FOUND
    label_zh, label_en = CASE_STATE_LABELS[state]
    if finding.deleted:
        label_zh, label_en = "记录已撤回", "Finding withdrawn"
    return {
        "_id": status_doc_id(finding.doc_id),
        "type": "case_status",
        "schema_version": 1,
        "finding_id": finding.doc_id,
        "finding_rev": finding.rev,
        "case_id": case.id if case else "",
        "case_no": case.case_no if case else "",
        "state": "withdrawn" if finding.deleted else str(state),
        "state_label_zh": label_zh,
        "state_label_en": label_en,
        "grid": case.grid_code if case else None,
        "micro_grid": case.micro_grid_code if case else None,
        "updated_at": utc_now().isoformat(),
    }


async def _put(couch: CouchClient, db: str, body: dict[str, Any], known_rev: str | None) -> str:
    doc = dict(body)
    if known_rev:
        doc["_rev"] = known_rev
    try:
        return str((await couch.put_doc(db, doc))["rev"])
    except CouchConflict:
        try:
            current = await couch.get_doc(db, doc["_id"])
            doc["_rev"] = current["_rev"]
        except CouchNotFound:
            doc.pop("_rev", None)
        return str((await couch.put_doc(db, doc))["rev"])


async def publish_statuses(
    sessions: SessionMaker,
    couch: CouchClient,
    *,
    limit: int = STATUS_BATCH,
    others: Collection[str] = (),
) -> int:
    """Publish pending statuses (up to ``limit``); returns how many were written. ``others``: the
    feeds this worker does not hold, whose statuses are their holder's to write (a database that is
    no feed at all, e.g. a retired grid's, is nobody's share: every worker publishes it)."""
    query = (
        select(Finding, Case)
        .join(Case, col(Finding.case_id) == col(Case.id), isouter=True)
        .where(Finding.status_version > Finding.status_published_version)
    )
    if others:
        query = query.where(col(Finding.source_db).not_in(list(others)))
    async with sessions() as session:
        pending = (await session.exec(query.limit(limit))).all()
    if not pending:
        return 0
    # One _bulk_docs per source database; a document someone else wrote meanwhile (a conflict)
    # is retried on its own with its current revision.
    by_db: dict[str, list[tuple[Finding, Case | None]]] = {}
    for row_finding, row_case in pending:
        by_db.setdefault(row_finding.source_db, []).append((row_finding, row_case))
    published: list[tuple[str, int, str]] = []
    for db, items in by_db.items():
        bodies = []
        for finding, case in items:
            body = _status_body(finding, case)
            if finding.status_doc_rev:
                body["_rev"] = finding.status_doc_rev
            bodies.append(body)
        # pouchdb-server may answer out of order: match answers by id
        answers = {str(a.get("id")): a for a in await couch.bulk_docs(db, bodies)}
        for finding, case in items:
            rev = answers.get(status_doc_id(finding.doc_id), {}).get("rev")
            if rev is None:
                rev = await _put(couch, db, _status_body(finding, case), None)
            published.append((finding.doc_id, finding.status_version, str(rev)))
    async with sessions() as session:
        for doc_id, version, rev in published:
            await session.exec(
                update(Finding)
                .where(col(Finding.doc_id) == doc_id)
                .values(status_published_version=version, status_doc_rev=rev)
            )
        await session.commit()
    return len(published)
