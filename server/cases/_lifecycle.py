"""Acting on a case: loop steps, dispatch to departments, department answers, resident follow-ups.

Every change appends a ``CaseEvent`` (never edited, never deleted) in the same transaction. Case
changes compare-and-set ``Case.version``, so of two leaders acting on the same version only the
first wins; the other gets 409 and reloads. A state change bumps the ``status_version`` of the
case's findings, so the write-back tells each tablet what happened to its finding.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.auth import Principal
from server.cases._access import CaseAccess
from server.cases._calendar import CalendarError, load_calendar
from server.cases._schemas import (
    DispatchAcknowledge,
    DispatchCreate,
    DispatchReport,
    FollowUpCreate,
    TransitionCreate,
)
from server.cases._transitions import TransitionFacts, TransitionRefused, check_transition
from server.db.models import (
    SATISFACTION_LABELS,
    Case,
    CaseDispatch,
    CaseEvent,
    CaseFollowUp,
    CaseState,
    DispatchState,
    Finding,
    Role,
    Satisfaction,
    as_utc,
    utc_now,
)
from server.errors import ApiError
from server.runtime import Runtime

__all__ = ["CaseActions", "compare_and_set", "refresh_open_deadline"]

DEFAULT_WORKING_DAYS = 5
"""Shanghai 12345's deadline for help requests and complaints, when the concern names none."""
_DISPATCH_MOVES_TO_COORDINATING = frozenset({CaseState.PROBLEM_FOUND, CaseState.REOPENED})
_DISPATCHABLE = _DISPATCH_MOVES_TO_COORDINATING | {CaseState.COORDINATING, CaseState.RESOLVING}
_FOLLOW_UP_STATES = frozenset({CaseState.FOLLOW_UP, CaseState.CLOSED})
_DISPATCH_LABELS = {
    DispatchState.DISPATCHED: "已派单",
    DispatchState.ACKNOWLEDGED: "已签收",
    DispatchState.REPORTED: "已反馈",
}
_REOPEN_TARGET = {CaseState.FOLLOW_UP: CaseState.RESOLVING, CaseState.CLOSED: CaseState.REOPENED}


def _refused(exc: TransitionRefused) -> ApiError:
    error = "forbidden" if exc.status == 403 else "transition_refused"
    return ApiError(exc.status, error, exc.reason_zh, f"{exc.reason_en} [rule: {exc.rule}]")


def _changed() -> ApiError:
    return ApiError(
        409,
        "case_changed",
        "案件刚被他人处理，请刷新后再操作",
        "someone acted on this case meanwhile; reload it and try again",
    )


async def refresh_open_deadline(session: AsyncSession, case_id: str) -> None:
    """Recompute ``Case.open_deadline_at`` from the case's unreported dispatches. Callers hold the
    case row (compare-and-set or ``FOR UPDATE``), so concurrent reports cannot leave it stale."""
    earliest = (
        select(func.min(CaseDispatch.deadline_at))
        .where(col(CaseDispatch.case_id) == case_id, col(CaseDispatch.reported_at).is_(None))
        .scalar_subquery()
    )
    await session.exec(update(Case).where(col(Case.id) == case_id).values(open_deadline_at=earliest))


async def compare_and_set(session: AsyncSession, case: Case, expected: int | None, **values: Any) -> None:
    """Bump ``case.version`` (and write ``values``) only if nobody moved the case since it was read;
    409 (after a rollback) otherwise. The update holds the row until the transaction ends."""
    if expected is not None and expected != case.version:
        raise _changed()
    result = await session.exec(
        update(Case)
        .where(col(Case.id) == case.id, col(Case.version) == case.version)
        .values(version=case.version + 1, **values)
    )
    if result.rowcount != 1:
        await session.rollback()
        raise _changed()


class CaseActions:
    def __init__(self, runtime: Runtime, session: AsyncSession, principal: Principal) -> None:
        self.access = CaseAccess(session, principal)
        self.runtime = runtime
        self.session = session
        self.principal = principal

    # --- shared steps -------------------------------------------------------------------------

    async def _has_follow_up(self, case_id: str) -> bool:
        """A follow-up was recorded since the case last entered the follow-up step (跟踪问效)."""
        entered = (
            await self.session.exec(
                select(func.max(CaseEvent.at)).where(
                    col(CaseEvent.case_id) == case_id, col(CaseEvent.to_state) == CaseState.FOLLOW_UP
                )
            )
        ).one()
        query = select(func.count()).select_from(CaseFollowUp).where(col(CaseFollowUp.case_id) == case_id)
        if entered is not None:
            query = query.where(col(CaseFollowUp.at) > entered)
        return bool((await self.session.exec(query)).one())

    async def _bump(
        self, case: Case, expected: int | None, new_state: CaseState | None, now: datetime
    ) -> None:
        """Compare-and-set the case version (and state); 409 when someone else moved it first."""
        values: dict[str, Any] = {"updated_at": now}
        if new_state is not None:
            values["state"] = new_state
        await compare_and_set(self.session, case, expected, **values)
        if new_state is not None:
            await self.session.exec(
                update(Finding)
                .where(col(Finding.case_id) == case.id)
                .values(status_version=col(Finding.status_version) + 1)
            )

    def _event(self, case_id: str, action: str, reason: str, now: datetime, **details: Any) -> CaseEvent:
        event = CaseEvent(
            case_id=case_id,
            at=now,
            actor=self.principal.username,
            action=action,
            reason=reason,
            details=details,
        )
        self.session.add(event)
        return event

    async def _move(self, case: Case, target: CaseState, reason: str, expected: int | None) -> None:
        current = CaseState(case.state)
        facts = TransitionFacts(
            role=self.principal.role,
            in_scope=self.access.in_write_scope(case),
            has_follow_up=target is CaseState.CLOSED and await self._has_follow_up(case.id),
        )
        try:
            check_transition(current, target, facts)
        except TransitionRefused as exc:
            raise _refused(exc) from exc
        now = utc_now()
        version = case.version + 1  # read before the update: the session may refresh ``case``
        await self._bump(case, expected, target, now)
        event = self._event(case.id, "transition", reason, now, version=version)
        event.from_state, event.to_state = str(current), str(target)

    # --- endpoints ----------------------------------------------------------------------------

    async def transition(self, case_id: str, body: TransitionCreate) -> str:
        case = await self.access.writable(case_id)
        await self._move(case, body.to, body.reason, body.expected_version)
        await self.session.commit()
        return case.id

    async def dispatch(self, case_id: str, body: DispatchCreate) -> str:
        case = await self.access.writable(case_id)
        state = CaseState(case.state)
        if state not in _DISPATCHABLE:
            raise ApiError(
                409,
                "dispatch_not_in_state",
                "只有“发现问题”“协调协同”“解决解释”或“已重启”的案件可以派单",
                f"cases are dispatched in problem_found, coordinating, resolving or reopened, not {state}",
            )
        codes = list(dict.fromkeys(body.departments))
        known = self.runtime.taxonomy.departments
        unknown = [c for c in codes if c not in known or known[c].retired]
        if unknown:
            raise ApiError(
                400,
                "bad_request",
                f"未知或已停用的部门：{unknown}",
                f"unknown or retired departments: {unknown}",
            )
        open_rows = (
            await self.session.exec(
                select(CaseDispatch.department_code).where(
                    col(CaseDispatch.case_id) == case.id,
                    col(CaseDispatch.department_code).in_(codes),
                    col(CaseDispatch.reported_at).is_(None),
                )
            )
        ).all()
        if open_rows:
            raise ApiError(
                409,
                "already_dispatched",
                f"这些部门尚未反馈上次派单：{sorted(open_rows)}",
                f"these departments have not reported on their open dispatch yet: {sorted(open_rows)}",
            )
        concern = self.runtime.taxonomy.concern(case.concern_code)
        days = body.working_days or (concern.deadline_working_days if concern else DEFAULT_WORKING_DAYS)
        try:
            calendar = load_calendar(self.runtime.settings.workday_calendar_file)
        except CalendarError as exc:
            raise ApiError(500, "calendar_unavailable", "工作日历不可用", str(exc)) from exc
        now = utc_now()
        deadline = calendar.deadline(now, days, self.runtime.settings.timezone)
        if state in _DISPATCH_MOVES_TO_COORDINATING:
            await self._move(case, CaseState.COORDINATING, body.reason, body.expected_version)
        else:
            await self._bump(case, body.expected_version, None, now)
        for code in codes:
            self.session.add(
                CaseDispatch(
                    case_id=case.id,
                    department_code=code,
                    instructions=body.instructions,
                    working_days=days,
                    dispatched_by=self.principal.username,
                    dispatched_at=now,
                    deadline_at=deadline.at,
                    deadline_provisional=deadline.provisional,
                )
            )
            self._event(
                case.id,
                "dispatched",
                body.reason,
                now,
                department=code,
                working_days=days,
                deadline=deadline.at.isoformat(),
                deadline_local_date=deadline.due_date.isoformat(),
            )
        await self.session.flush()
        await refresh_open_deadline(self.session, case.id)
        await self.session.commit()
        return case.id

    async def _own_dispatch(self, case_id: str, dispatch_id: int) -> CaseDispatch:
        await self.access.readable(case_id)
        row = await self.session.get(CaseDispatch, dispatch_id)
        if row is None or row.case_id != case_id:
            raise ApiError.not_found("派单不存在", "dispatch not found on this case")
        if not (self.principal.is_admin or self.principal.role is Role.DEPARTMENT):
            raise ApiError.forbidden(
                "只有责任部门可以签收和反馈", "only the department itself acknowledges and reports"
            )
        if not self.principal.is_admin and row.department_code != self.principal.department:
            raise ApiError.forbidden("这不是派给本部门的单", "this dispatch is for another department")
        return row

    async def _advance(self, row: CaseDispatch, allowed: set[DispatchState], values: dict[str, Any]) -> None:
        current = DispatchState(row.state)
        result = await self.session.exec(
            update(CaseDispatch)
            .where(col(CaseDispatch.id) == row.id, col(CaseDispatch.state).in_(allowed))
            .values(**values)
        )
        if result.rowcount != 1:
            await self.session.rollback()
            raise ApiError(
                409,
                "dispatch_state",
                f"该派单当前为“{_DISPATCH_LABELS[current]}”，不能再执行此操作",
                f"the dispatch is {current}; this step no longer applies",
            )

    async def acknowledge(self, case_id: str, dispatch_id: int, body: DispatchAcknowledge) -> str:
        row = await self._own_dispatch(case_id, dispatch_id)
        now = utc_now()
        await self._advance(
            row,
            {DispatchState.DISPATCHED},
            {
                "state": DispatchState.ACKNOWLEDGED,
                "acknowledged_by": self.principal.username,
                "acknowledged_at": now,
            },
        )
        self._event(
            case_id,
            "dispatch_acknowledged",
            body.note or "已签收 / acknowledged",
            now,
            dispatch=dispatch_id,
            department=row.department_code,
        )
        await self.session.commit()
        return case_id

    async def report(self, case_id: str, dispatch_id: int, body: DispatchReport) -> str:
        row = await self._own_dispatch(case_id, dispatch_id)
        # Hold the case row while the open deadline is recomputed (PostgreSQL; SQLite has one writer).
        await self.session.exec(select(Case.id).where(col(Case.id) == case_id).with_for_update())
        now = utc_now()
        values: dict[str, Any] = {
            "state": DispatchState.REPORTED,
            "reported_by": self.principal.username,
            "reported_at": now,
            "report": body.report,
        }
        if row.acknowledged_at is None:
            values |= {"acknowledged_by": self.principal.username, "acknowledged_at": now}
        await self._advance(row, {DispatchState.DISPATCHED, DispatchState.ACKNOWLEDGED}, values)
        await refresh_open_deadline(self.session, case_id)
        # The case row changed (its open deadline): readers of ``updated_at`` must see it. No version
        # bump: a department's answer must not make the leader's next step a 409.
        await self.session.exec(update(Case).where(col(Case.id) == case_id).values(updated_at=now))
        late = now > as_utc(row.deadline_at)
        self._event(
            case_id,
            "dispatch_reported",
            body.report,
            now,
            dispatch=dispatch_id,
            department=row.department_code,
            late=late,
        )
        await self.session.commit()
        return case_id

    async def follow_up(self, case_id: str, body: FollowUpCreate) -> str:
        case = await self.access.writable(case_id)
        state = CaseState(case.state)
        if state not in _FOLLOW_UP_STATES:
            raise ApiError(
                409,
                "follow_up_not_in_state",
                "回访在“跟踪问效”阶段（或办结后）进行",
                f"follow-ups are recorded in follow_up (or after closing), not in {state}",
            )
        if body.reopen and body.satisfaction is not Satisfaction.DISSATISFIED:
            raise ApiError(
                409,
                "reopen_needs_dissatisfied",
                "只有居民不满意时才能据此重启",
                "only a dissatisfied resident reopens a case",
            )
        now = utc_now()
        self.session.add(
            CaseFollowUp(
                case_id=case.id,
                at=now,
                recorded_by=self.principal.username,
                method=body.method,
                satisfaction=body.satisfaction,
                resident_comment=body.resident_comment,
                note=body.note,
            )
        )
        self._event(
            case.id,
            "follow_up",
            body.note or body.resident_comment or " / ".join(SATISFACTION_LABELS[body.satisfaction]),
            now,
            satisfaction=str(body.satisfaction),
            method=body.method,
        )
        if body.reopen:
            reason = f"居民不满意 / resident dissatisfied: {body.resident_comment}".strip()
            await self._move(case, _REOPEN_TARGET[state], reason, None)
        else:
            await self._bump(case, None, None, now)
        await self.session.commit()
        return case.id
