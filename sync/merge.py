"""The merge engine: one change from a grid database becomes findings and case records in SQL.

``apply_change`` runs inside the caller's transaction (the same one that moves the checkpoint),
and is idempotent by (document id, revision): replaying a change does nothing.
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from field_schema import DocumentInvalid, Taxonomy, upgrade, validate_document
from geo import GridIndex, to_wgs84
from server.db.models import Case, CaseEvent, CaseState, Finding, FindingRevision, utc_now
from sync.case_numbers import allocate_case_numbers

__all__ = ["WORKER_ACTOR", "ChangeOutcome", "apply_change"]

WORKER_ACTOR = "system:worker"
MERGED_TYPES = frozenset({"hazard"})


@dataclass(frozen=True)
class ChangeOutcome:
    action: str
    """skipped, duplicate, invalid, created, updated, deleted."""
    case_id: str | None = None
    detail: str = ""


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            return utc_now()
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


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
    doc_id = str(row["id"])
    doc: Mapping[str, Any] | None = row.get("doc")
    if doc_id.startswith("_design/") or doc is None:
        return ChangeOutcome("skipped")
    rev = str(doc.get("_rev") or row["changes"][0]["rev"])
    deleted = bool(row.get("deleted") or doc.get("_deleted"))
    if not deleted and doc.get("type") not in MERGED_TYPES:
        return ChangeOutcome("skipped")
    already = await session.exec(
        select(FindingRevision.id).where(FindingRevision.doc_id == doc_id, FindingRevision.rev == rev)
    )
    if already.first() is not None:
        return ChangeOutcome("duplicate")
    finding = await session.get(Finding, doc_id)
    if deleted:
        if finding is None:
            return ChangeOutcome("skipped")
        outcome = await _withdraw(session, finding, rev)
    else:
        try:
            validate_document(doc, taxonomy)
        except DocumentInvalid as exc:
            # The gateway refuses these at push; one can still arrive written straight to CouchDB.
            return ChangeOutcome("invalid", detail=str(exc))
        current = upgrade(doc)
        if finding is None:
            outcome = await _create(
                session, source_db, source_grid, current, rev, grid_index, taxonomy, timezone
            )
        else:
            outcome = await _update(session, finding, current, rev, grid_index, taxonomy)
    session.add(FindingRevision(doc_id=doc_id, rev=rev, source_db=source_db, seq=str(row.get("seq", ""))))
    return outcome


def _finding_fields(doc: Mapping[str, Any], taxonomy: Taxonomy) -> dict[str, Any]:
    location = doc["location"]
    lon, lat = to_wgs84(float(location["lon"]), float(location["lat"]), str(location["datum"]))
    concern = taxonomy.concern(str(doc["concern_code"]))
    severity = doc.get("severity") or (concern.default_severity if concern else "medium")
    return {
        "author": str(doc["author"]),
        "device_id": str(doc["device_id"]),
        "schema_version": int(doc["schema_version"]),
        "concern_code": str(doc["concern_code"]),
        "severity": str(severity),
        "note": str(doc.get("note") or ""),
        "lat": lat,
        "lon": lon,
        "reported_lat": float(location["lat"]),
        "reported_lon": float(location["lon"]),
        "reported_datum": str(location["datum"]),
        "accuracy_m": float(location.get("accuracy_m") or 0.0),
        "observed_at": _parse_time(doc["observed_at"]),
        "photos": sorted((doc.get("_attachments") or {}).keys()),
    }


async def _create(
    session: AsyncSession,
    source_db: str,
    source_grid: str | None,
    doc: Mapping[str, Any],
    rev: str,
    grid_index: GridIndex | None,
    taxonomy: Taxonomy,
    timezone: str,
) -> ChangeOutcome:
    fields = _finding_fields(doc, taxonomy)
    assignment = grid_index.assign(fields["lon"], fields["lat"], fields["accuracy_m"]) if grid_index else None
    case_id = str(uuid.uuid4())
    grid = assignment.grid if assignment else None
    case = Case(
        id=case_id,
        case_no=(await allocate_case_numbers(session, grid, zone=timezone))[0],
        grid_code=grid,
        micro_grid_code=assignment.micro_grid if assignment else None,
        intake_grid=source_grid,
        assignment=str(assignment.status) if assignment else "unassigned",
        assignment_candidates=list(assignment.candidates) if assignment else [],
        concern_code=fields["concern_code"],
        severity=fields["severity"],
        state=CaseState.PROBLEM_FOUND,
        lat=fields["lat"],
        lon=fields["lon"],
        summary=fields["note"][:500],
    )
    session.add(case)
    await session.flush()
    session.add(
        Finding(
            doc_id=str(doc["_id"]), source_db=source_db, rev=rev, case_id=case_id, status_version=1, **fields
        )
    )
    session.add(
        CaseEvent(
            case_id=case_id,
            actor=WORKER_ACTOR,
            action="created",
            from_state=None,
            to_state=str(CaseState.PROBLEM_FOUND),
            reason="新发现 / new finding",
            details={"finding": str(doc["_id"]), "rev": rev, "author": fields["author"]},
        )
    )
    return ChangeOutcome("created", case_id)


async def _update(
    session: AsyncSession,
    finding: Finding,
    doc: Mapping[str, Any],
    rev: str,
    grid_index: GridIndex | None,
    taxonomy: Taxonomy,
) -> ChangeOutcome:
    fields = _finding_fields(doc, taxonomy)
    for key, value in fields.items():
        setattr(finding, key, value)
    finding.rev = rev
    finding.deleted = False
    finding.status_version += 1
    session.add(finding)
    if finding.case_id is not None:
        case = await session.get(Case, finding.case_id)
        if case is not None:
            case.summary = fields["note"][:500] or case.summary
            case.updated_at = utc_now()
            session.add(case)
            session.add(
                CaseEvent(
                    case_id=case.id,
                    actor=WORKER_ACTOR,
                    action="finding_updated",
                    reason="记录已更新 / finding revised",
                    details={"finding": finding.doc_id, "rev": rev},
                )
            )
    return ChangeOutcome("updated", finding.case_id)


async def _withdraw(session: AsyncSession, finding: Finding, rev: str) -> ChangeOutcome:
    finding.deleted = True
    finding.rev = rev
    finding.status_version += 1
    session.add(finding)
    if finding.case_id is not None:
        session.add(
            CaseEvent(
                case_id=finding.case_id,
                actor=WORKER_ACTOR,
                action="finding_withdrawn",
                reason="记录已被作者删除 / finding deleted on the tablet",
                details={"finding": finding.doc_id, "rev": rev},
            )
        )
    return ChangeOutcome("deleted", finding.case_id)
