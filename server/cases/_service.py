"""Reading cases for the people allowed to see them (role × grid checked here, once)."""

import base64
import binascii
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import quote

from sqlalchemy import ColumnElement, and_, func, or_, true
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.auth import Principal
from server.cases._schemas import CasePublic, CasesPublic, FindingPublic, PhotoLink
from server.db.models import CASE_STATE_LABELS, Case, CaseState, Finding, Role, as_utc
from server.errors import ApiError
from server.localtime import to_local
from server.runtime import Runtime

__all__ = ["CASE_READER_ROLES", "CaseReader"]

CASE_READER_ROLES = frozenset({Role.GRID_LEADER, Role.ADMIN})
MAX_PAGE = 200


def _encode_cursor(case: Case) -> str:
    raw = f"{as_utc(case.created_at).isoformat()}|{case.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, _, case_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(created), case_id
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, "bad_request", "分页游标无效", "invalid cursor") from exc


class CaseReader:
    def __init__(self, runtime: Runtime, session: AsyncSession, principal: Principal) -> None:
        if principal.role not in CASE_READER_ROLES:
            raise ApiError.forbidden("只有网格长可以查看案件", "only grid leaders may read cases")
        self.runtime = runtime
        self.session = session
        self.principal = principal

    def _scope_clause(self) -> ColumnElement[bool]:
        if self.principal.is_admin:
            return true()
        grids = list(self.principal.grids)
        return or_(
            col(Case.grid_code).in_(grids),
            and_(col(Case.grid_code).is_(None), col(Case.intake_grid).in_(grids)),
        )

    async def search(
        self,
        *,
        grid: str | None = None,
        state: CaseState | None = None,
        concern: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> CasesPublic:
        if grid is not None and not self.principal.is_admin and grid not in self.principal.grids:
            raise ApiError.forbidden(f"网格 {grid} 不在您的负责范围", f"grid {grid} is outside your scope")
        filters = [self._scope_clause()]
        if grid is not None:
            filters.append(
                or_(
                    col(Case.grid_code) == grid,
                    and_(col(Case.grid_code).is_(None), col(Case.intake_grid) == grid),
                )
            )
        if state is not None:
            filters.append(col(Case.state) == state)
        if concern is not None:
            filters.append(col(Case.concern_code) == concern)
        count = (await self.session.exec(select(func.count()).select_from(Case).where(*filters))).one()
        query = select(Case).where(*filters)
        if cursor:
            created, case_id = _decode_cursor(cursor)
            query = query.where(
                or_(
                    col(Case.created_at) < created,
                    and_(col(Case.created_at) == created, col(Case.id) < case_id),
                )
            )
        limit = max(1, min(limit, MAX_PAGE))
        rows = list(
            (
                await self.session.exec(
                    query.order_by(col(Case.created_at).desc(), col(Case.id).desc()).limit(limit + 1)
                )
            ).all()
        )
        next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
        rows = rows[:limit]
        findings = await self.findings_of([c.id for c in rows])
        return CasesPublic(
            data=[self.public(c, findings.get(c.id, [])) for c in rows], count=count, next_cursor=next_cursor
        )

    async def get(self, case_id: str) -> Case:
        case = (await self.session.exec(select(Case).where(Case.id == case_id, self._scope_clause()))).first()
        if case is None:
            raise ApiError.not_found("案件不存在或不在您的负责范围", "case not found or outside your scope")
        return case

    async def finding(self, case_id: str, doc_id: str) -> Finding:
        await self.get(case_id)
        finding = (
            await self.session.exec(
                select(Finding).where(Finding.case_id == case_id, Finding.doc_id == doc_id)
            )
        ).first()
        if finding is None:
            raise ApiError.not_found("该案件没有这条记录", "finding not found in this case")
        return finding

    async def findings_of(self, case_ids: Sequence[str]) -> dict[str, list[Finding]]:
        if not case_ids:
            return {}
        rows = (
            await self.session.exec(
                select(Finding).where(col(Finding.case_id).in_(case_ids)).order_by(col(Finding.received_at))
            )
        ).all()
        grouped: dict[str, list[Finding]] = defaultdict(list)
        for row in rows:
            if row.case_id is not None:
                grouped[row.case_id].append(row)
        return grouped

    def public(self, case: Case, findings: Sequence[Finding]) -> CasePublic:
        zone = self.runtime.settings.timezone
        index = self.runtime.grids.index
        area = index.by_code.get(case.grid_code) if index is not None and case.grid_code else None
        concern = self.runtime.taxonomy.concern(case.concern_code)
        label_zh, label_en = CASE_STATE_LABELS[CaseState(case.state)]
        public_findings = [
            FindingPublic(
                doc_id=f.doc_id,
                rev=f.rev,
                author=f.author,
                device_id=f.device_id,
                observed_at=to_local(f.observed_at, zone),
                received_at=to_local(f.received_at, zone),
                note=f.note,
                lat=f.lat,
                lon=f.lon,
                reported_datum=f.reported_datum,
                accuracy_m=f.accuracy_m,
                deleted=f.deleted,
                photos=[PhotoLink(name=name, url=photo_url(case.id, f.doc_id, name)) for name in f.photos],
            )
            for f in findings
        ]
        first_photo = next((p.url for f in public_findings if not f.deleted for p in f.photos), None)
        return CasePublic(
            id=case.id,
            case_no=case.case_no,
            grid_code=case.grid_code,
            grid_name_zh=area.name_zh if area else None,
            grid_name_en=area.name_en if area else None,
            micro_grid_code=case.micro_grid_code,
            assignment=case.assignment,
            assignment_candidates=list(case.assignment_candidates),
            concern_code=case.concern_code,
            concern_name_zh=concern.name_zh if concern else None,
            concern_name_en=concern.name_en if concern else None,
            severity=case.severity,
            state=str(case.state),
            state_label_zh=label_zh,
            state_label_en=label_en,
            lat=case.lat,
            lon=case.lon,
            summary=case.summary,
            created_at=to_local(case.created_at, zone),
            updated_at=to_local(case.updated_at, zone),
            photo_url=first_photo,
            findings=public_findings,
        )


def photo_url(case_id: str, doc_id: str, name: str) -> str:
    parts = (quote(case_id, safe=""), quote(doc_id, safe=""), quote(name, safe=""))
    return "/api/cases/{}/findings/{}/photos/{}".format(*parts)
