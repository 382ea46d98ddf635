"""Case rows written straight into SQL, for API tests and the case-list benchmark (no tablet, no worker)."""

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlmodel import col

from server.cases._lifecycle import refresh_open_deadline
from server.db import SessionMaker
from server.db.models import Case, CaseDispatch, CaseEvent, CaseState, Finding
from sync.case_search import refresh_case_search
from tests.support.stack import Stack

__all__ = ["add_case", "add_department_user", "case_row", "finding_row", "miss_deadline"]


def case_row(
    *,
    grid: str | None = "ZR01",
    micro_grid: str | None = None,
    concern: str = "04-01",
    state: CaseState = CaseState.PROBLEM_FOUND,
    lon: float = 121.3905,
    lat: float = 31.2600,
    summary: str = "",
    created_at: datetime | None = None,
    case_id: str | None = None,
) -> Case:
    case_id = case_id or str(uuid.uuid4())
    created_at = created_at or datetime.now(UTC)
    return Case(
        id=case_id,
        case_no=f"{grid or 'UNASSIGNED'}-{created_at:%Y%m%d}-{case_id[:8].upper()}",
        grid_code=grid,
        micro_grid_code=micro_grid,
        intake_grid=grid,
        assignment="assigned" if grid else "unassigned",
        concern_code=concern,
        severity="medium",
        state=state,
        lat=lat,
        lon=lon,
        summary=summary,
        created_at=created_at,
        updated_at=created_at,
    )


def finding_row(case: Case, *, doc_id: str, source_db: str, note: str = "", author: str = "vol1") -> Finding:
    return Finding(
        doc_id=doc_id,
        source_db=source_db,
        rev="1-abc",
        case_id=case.id,
        author=author,
        device_id="tablet-1",
        schema_version=2,
        concern_code=case.concern_code,
        severity=case.severity,
        note=note,
        lat=case.lat,
        lon=case.lon,
        reported_lat=case.lat,
        reported_lon=case.lon,
        reported_datum="wgs84",
        accuracy_m=5.0,
        observed_at=case.created_at,
        received_at=case.created_at,
        photos=["photo-1.png"],
        status_version=1,
        status_published_version=1,
    )


async def add_case(
    sessions: SessionMaker,
    *,
    finding_doc: str | None = None,
    source_db: str = "",
    note: str = "",
    **columns: object,
) -> Case:
    """Insert one case (and optionally its finding) as the worker would have left it."""
    case = case_row(**columns)  # type: ignore[arg-type]
    async with sessions() as session:
        session.add(case)
        await session.flush()
        if finding_doc is not None:
            session.add(finding_row(case, doc_id=finding_doc, source_db=source_db, note=note))
        session.add(
            CaseEvent(
                case_id=case.id,
                actor="worker",
                action="created",
                to_state=str(case.state),
                reason="新发现 / new finding",
            )
        )
        await refresh_case_search(session, [case.id])
        await session.commit()
        await session.refresh(case)
    return case


async def add_department_user(stack: Stack, username: str, department: str) -> None:
    """A department account (password ``<username>-password``), created through the users API."""
    async with stack.http("root") as admin:
        created = await admin.post(
            "/api/users",
            json={
                "username": username,
                "password": f"{username}-password",
                "role": "department",
                "department": department,
            },
        )
        assert created.status_code == 201, created.text
        assert created.json()["department"] == department


async def miss_deadline(sessions: SessionMaker, case_id: str, dispatch_id: int) -> None:
    """The department lets its dispatch run past the deadline (an hour ago); the case is overdue."""
    async with sessions() as session:
        await session.exec(
            update(CaseDispatch)
            .where(col(CaseDispatch.id) == dispatch_id)
            .values(deadline_at=datetime.now(UTC) - timedelta(hours=1))
        )
        await refresh_open_deadline(session, case_id)
        await session.commit()
