"""Reading cases for the people allowed to see them (role × grid checked here, once)."""

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import quote

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.auth import Principal
from server.cases._access import CASE_READER_ROLES, CASE_WRITER_ROLES, CaseAccess
from server.cases._query import (
    CaseFilters,
    cursor_clause,
    department_as_set,
    encode_cursor,
    filter_clauses,
)
from server.cases._schemas import (
    CaseDetailPublic,
    CaseEventPublic,
    CasePublic,
    CasesPublic,
    DispatchPublic,
    FindingPublic,
    FollowUpPublic,
    PhotoLink,
)
from server.cases._transitions import allowed_targets
from server.conflicts import conflict_public
from server.db.models import (
    CASE_STATE_LABELS,
    DISPATCH_STATE_LABELS,
    OPEN_DISPATCH_STATES,
    SATISFACTION_LABELS,
    Case,
    CaseDispatch,
    CaseEvent,
    CaseFollowUp,
    CaseState,
    Conflict,
    DispatchState,
    Finding,
    Refusal,
    Role,
    Satisfaction,
    as_utc,
    utc_now,
)
from server.errors import ApiError
from server.localtime import to_local
from server.refusals import refusal_public
from server.runtime import Runtime

__all__ = ["CASE_READER_ROLES", "CaseReader", "photo_url"]

MAX_PAGE = 200


class CaseReader:
    """Reads cases for one principal; every query carries the role × grid scope.

    By default only the roles that act on cases (grid leaders, admins) get a reader, and ``get``
    then returns only cases they may act on: other case endpoints (split, merge, conflicts) use it
    as their check. The read endpoints open it with ``roles=CASE_READER_ROLES`` (coordinators and
    department accounts read too); code that changes a case should prefer ``CaseAccess.writable``.
    """

    def __init__(
        self,
        runtime: Runtime,
        session: AsyncSession,
        principal: Principal,
        *,
        roles: frozenset[Role] = CASE_WRITER_ROLES,
    ) -> None:
        if principal.role not in roles:
            raise ApiError.forbidden(
                "您的角色不能办理案件" if roles == CASE_WRITER_ROLES else "您的角色不能查看案件",
                f"your role ({principal.role}) may not "
                + ("act on cases" if roles == CASE_WRITER_ROLES else "read cases"),
            )
        self.access = CaseAccess(session, principal, runtime.grids.parent_of)
        self.runtime = runtime
        self.session = session
        self.principal = principal

    def _check_filters(self, filters: CaseFilters) -> None:
        principal = self.principal
        if principal.is_admin:
            return
        grid_scoped = principal.role is not Role.DEPARTMENT
        if filters.grid is not None and grid_scoped and filters.grid not in principal.grids:
            raise ApiError.forbidden(
                f"网格 {filters.grid} 不在您的负责范围", f"grid {filters.grid} is outside your scope"
            )
        if (
            filters.department is not None
            and principal.department is not None
            and filters.department != principal.department
        ):
            raise ApiError.forbidden(
                f"只能查看派给本部门（{principal.department}）的案件",
                f"department accounts see only cases dispatched to {principal.department}",
            )

    async def search(
        self, filters: CaseFilters, *, limit: int = 50, cursor: str | None = None
    ) -> CasesPublic:
        self._check_filters(filters)
        now = utc_now()
        conditions = [self.access.scope_clause(), *filter_clauses(filters, now)]
        counted = [
            self.access.scope_clause(whole_set=department_as_set(filters)),
            *filter_clauses(filters, now, whole_set=True, scope_grids=self.access.scope_grids()),
        ]
        count = (await self.session.exec(select(func.count()).select_from(Case).where(*counted))).one()
        query = select(Case).where(*conditions)
        if cursor:
            query = query.where(cursor_clause(cursor))
        limit = max(1, min(limit, MAX_PAGE))
        rows = list(
            (
                await self.session.exec(
                    query.order_by(col(Case.created_at).desc(), col(Case.id).desc()).limit(limit + 1)
                )
            ).all()
        )
        next_cursor = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
        rows = rows[:limit]
        ids = [c.id for c in rows]
        findings = await self.findings_of(ids)
        dispatches = await self.dispatches_of(ids)
        return CasesPublic(
            data=[self.public(c, findings.get(c.id, []), dispatches.get(c.id, []), now) for c in rows],
            count=count,
            next_cursor=next_cursor,
        )

    async def get(self, case_id: str) -> Case:
        """The case if the principal may read it (404 otherwise)."""
        return await self.access.readable(case_id)

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
        query = (
            select(Finding)
            .where(col(Finding.case_id).in_(case_ids))
            .order_by(col(Finding.received_at), col(Finding.doc_id))
        )
        rows = (await self.session.exec(query)).all()
        grouped: dict[str, list[Finding]] = defaultdict(list)
        for row in rows:
            if row.case_id is not None:
                grouped[row.case_id].append(row)
        return grouped

    async def dispatches_of(self, case_ids: Sequence[str]) -> dict[str, list[CaseDispatch]]:
        if not case_ids:
            return {}
        rows = (
            await self.session.exec(
                select(CaseDispatch)
                .where(col(CaseDispatch.case_id).in_(case_ids))
                .order_by(col(CaseDispatch.id))
            )
        ).all()
        grouped: dict[str, list[CaseDispatch]] = defaultdict(list)
        for row in rows:
            grouped[row.case_id].append(row)
        return grouped

    async def detail(self, case: Case) -> CaseDetailPublic:
        """Everything about one case: findings, dispatches, follow-ups, audit trail, refusals."""
        now = utc_now()
        zone = self.runtime.settings.timezone
        findings = (await self.findings_of([case.id])).get(case.id, [])
        dispatches = (await self.dispatches_of([case.id])).get(case.id, [])
        events = (
            await self.session.exec(
                select(CaseEvent).where(col(CaseEvent.case_id) == case.id).order_by(col(CaseEvent.id))
            )
        ).all()
        follow_ups = (
            await self.session.exec(
                select(CaseFollowUp)
                .where(col(CaseFollowUp.case_id) == case.id)
                .order_by(col(CaseFollowUp.id))
            )
        ).all()
        doc_ids = [f.doc_id for f in findings]
        # Refusals and conflicts carry volunteers' devices and their branches' bodies: for the
        # grid's own people (leaders and admins decide conflicts, as at /api/conflicts), not for a
        # department handling a dispatch.
        sees_refusals = self.principal.role is not Role.DEPARTMENT
        refusals = (
            (
                await self.session.exec(
                    select(Refusal).where(col(Refusal.doc_id).in_(doc_ids)).order_by(col(Refusal.id))
                )
            ).all()
            if doc_ids and sees_refusals
            else []
        )
        conflicts = (
            (
                await self.session.exec(
                    select(Conflict).where(col(Conflict.case_id) == case.id).order_by(col(Conflict.id))
                )
            ).all()
            if self.principal.role in CASE_WRITER_ROLES
            else []
        )
        base = self.public(case, findings, dispatches, now)
        return CaseDetailPublic(
            **base.model_dump(),
            allowed_transitions=[str(s) for s in allowed_targets(CaseState(case.state), self.principal.role)]
            if self.access.in_write_scope(case)
            else [],
            events=[
                CaseEventPublic(
                    id=e.id or 0,
                    at=to_local(e.at, zone),
                    actor=e.actor,
                    action=e.action,
                    from_state=e.from_state,
                    to_state=e.to_state,
                    reason=e.reason,
                    details=dict(e.details),
                )
                for e in events
            ],
            follow_ups=[self.follow_up_public(f) for f in follow_ups],
            refusals=[refusal_public(r, zone) for r in refusals],
            conflicts=[conflict_public(c, zone) for c in conflicts],
        )

    def follow_up_public(self, row: CaseFollowUp) -> FollowUpPublic:
        label_zh, label_en = SATISFACTION_LABELS[Satisfaction(row.satisfaction)]
        return FollowUpPublic(
            id=row.id or 0,
            at=to_local(row.at, self.runtime.settings.timezone),
            recorded_by=row.recorded_by,
            method=row.method,
            satisfaction=str(row.satisfaction),
            satisfaction_label_zh=label_zh,
            satisfaction_label_en=label_en,
            resident_comment=row.resident_comment,
            note=row.note,
        )

    def dispatch_public(self, row: CaseDispatch, now: datetime) -> DispatchPublic:
        zone = self.runtime.settings.timezone
        department = self.runtime.taxonomy.departments.get(row.department_code)
        label_zh, label_en = DISPATCH_STATE_LABELS[DispatchState(row.state)]

        def local(value: datetime | None) -> datetime | None:
            return to_local(value, zone) if value is not None else None

        return DispatchPublic(
            id=row.id or 0,
            department_code=row.department_code,
            department_name_zh=department.name_zh if department else None,
            department_name_en=department.name_en if department else None,
            state=str(row.state),
            state_label_zh=label_zh,
            state_label_en=label_en,
            instructions=row.instructions,
            working_days=row.working_days,
            dispatched_by=row.dispatched_by,
            dispatched_at=to_local(row.dispatched_at, zone),
            deadline_at=to_local(row.deadline_at, zone),
            deadline_provisional=row.deadline_provisional,
            overdue=row.state in OPEN_DISPATCH_STATES and as_utc(row.deadline_at) < now,
            acknowledged_by=row.acknowledged_by,
            acknowledged_at=local(row.acknowledged_at),
            reported_by=row.reported_by,
            reported_at=local(row.reported_at),
            report=row.report,
            cancelled_by=row.cancelled_by,
            cancelled_at=local(row.cancelled_at),
            cancel_reason=row.cancel_reason,
            reassigned_to=row.reassigned_to,
            reassigned_from=row.reassigned_from,
        )

    def public(
        self,
        case: Case,
        findings: Sequence[Finding],
        dispatches: Sequence[CaseDispatch] = (),
        now: datetime | None = None,
    ) -> CasePublic:
        now = now or utc_now()
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
        public_dispatches = [self.dispatch_public(d, now) for d in dispatches]
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
            version=case.version,
            overdue=any(d.overdue for d in public_dispatches),
            findings=public_findings,
            dispatches=public_dispatches,
        )


def photo_url(case_id: str, doc_id: str, name: str) -> str:
    parts = (quote(case_id, safe=""), quote(doc_id, safe=""), quote(name, safe=""))
    return "/api/cases/{}/findings/{}/photos/{}".format(*parts)
