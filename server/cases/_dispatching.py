"""Dispatch to departments (吹哨报到): the leader blows the whistle, departments report in and
back, and the leader may cancel a dispatch (wrong department) or reassign it to another.

Every step appends a ``CaseEvent``. The leader's steps compare-and-set the case version like the
loop's steps; a department's answers compare-and-set the dispatch's own state, so an answer and a
cancellation that cross are decided once. ``Case.open_deadline_at`` (the overdue filter) is
recomputed from the open dispatches under the case row after every change. A cancelled dispatch
is no longer its department's work: the department's case list no longer shows it for that
dispatch, and its answers are refused (409) with the leader's reason. Reported dispatches are the
case's history and cannot be cancelled.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import func, update
from sqlmodel import col, select

from server.cases._calendar import CalendarError, Deadline, load_calendar
from server.cases._lifecycle import CaseActions, open_dispatch, refresh_open_deadline
from server.cases._schemas import (
    DispatchAcknowledge,
    DispatchCancel,
    DispatchCreate,
    DispatchReassign,
    DispatchReport,
)
from server.db.models import (
    DISPATCH_STATE_LABELS,
    OPEN_DISPATCH_STATES,
    Case,
    CaseDispatch,
    CaseEvent,
    CaseState,
    DispatchState,
    Role,
    as_utc,
    utc_now,
)
from server.errors import ApiError

__all__ = ["DEFAULT_WORKING_DAYS", "DispatchActions"]

DEFAULT_WORKING_DAYS = 5
"""Shanghai 12345's deadline for help requests and complaints, when the concern names none."""
_DISPATCH_MOVES_TO_COORDINATING = frozenset({CaseState.PROBLEM_FOUND, CaseState.REOPENED})
_DISPATCHABLE = _DISPATCH_MOVES_TO_COORDINATING | {CaseState.COORDINATING, CaseState.RESOLVING}


def _cancelled(row: CaseDispatch) -> ApiError:
    moved = "，已改派其他部门" if row.reassigned_to is not None else ""
    moved_en = " and reassigned to another department" if row.reassigned_to is not None else ""
    return ApiError(
        409,
        "dispatch_cancelled",
        f"该派单已被网格长撤销{moved}，无需签收或反馈（原因：{row.cancel_reason}）",
        f"this dispatch was cancelled by the grid leader{moved_en}; nothing to acknowledge or report "
        f"(reason: {row.cancel_reason})",
    )


class DispatchActions(CaseActions):
    def _check_dispatchable(self, case: Case) -> None:
        state = CaseState(case.state)
        if state not in _DISPATCHABLE:
            raise ApiError(
                409,
                "dispatch_not_in_state",
                "只有“发现问题”“协调协同”“解决解释”或“已重启”的案件可以派单",
                f"cases are dispatched in problem_found, coordinating, resolving or reopened, not {state}",
            )

    async def _check_departments(self, case: Case, codes: list[str]) -> None:
        """Departments of the taxonomy, in service, without an open dispatch on this case."""
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
                    open_dispatch(),
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

    def _deadline(self, now: datetime, days: int) -> Deadline:
        try:
            calendar = load_calendar(self.runtime.settings.workday_calendar_file)
        except CalendarError as exc:
            raise ApiError(500, "calendar_unavailable", "工作日历不可用", str(exc)) from exc
        return calendar.deadline(now, days, self.runtime.settings.timezone)

    def _add_dispatch(
        self,
        case: Case,
        code: str,
        *,
        days: int,
        deadline: Deadline,
        instructions: str,
        reason: str,
        now: datetime,
        **details: Any,
    ) -> CaseDispatch:
        """A new dispatch and its ``dispatched`` event (``details`` go into the event)."""
        row = CaseDispatch(
            case_id=case.id,
            department_code=code,
            instructions=instructions,
            working_days=days,
            dispatched_by=self.principal.username,
            dispatched_at=now,
            deadline_at=deadline.at,
            deadline_provisional=deadline.provisional,
        )
        self.session.add(row)
        self._event(
            case.id,
            "dispatched",
            reason,
            now,
            department=code,
            working_days=days,
            deadline=deadline.at.isoformat(),
            deadline_local_date=deadline.due_date.isoformat(),
            **details,
        )
        return row

    async def dispatch(self, case_id: str, body: DispatchCreate) -> str:
        case = await self.access.writable(case_id)
        self._check_dispatchable(case)
        codes = list(dict.fromkeys(body.departments))
        await self._check_departments(case, codes)
        concern = self.runtime.taxonomy.concern(case.concern_code)
        days = body.working_days or (concern.deadline_working_days if concern else DEFAULT_WORKING_DAYS)
        now = utc_now()
        deadline = self._deadline(now, days)
        if CaseState(case.state) in _DISPATCH_MOVES_TO_COORDINATING:
            # Marked, so that cancelling every dispatch can take the case back where it was.
            await self._move(
                case, CaseState.COORDINATING, body.reason, body.expected_version, by_dispatch=True
            )
        else:
            await self._bump(case, body.expected_version, None, now)
        for code in codes:
            self._add_dispatch(
                case,
                code,
                days=days,
                deadline=deadline,
                instructions=body.instructions,
                reason=body.reason,
                now=now,
            )
        await self.session.flush()
        await refresh_open_deadline(self.session, case.id)
        await self.session.commit()
        return case.id

    async def _own_dispatch(self, case_id: str, dispatch_id: int) -> CaseDispatch:
        row = await self.session.get(CaseDispatch, dispatch_id)
        # A cancelled dispatch is no longer its department's work (the case may be out of its sight
        # now): the department that had it is told so, not that nothing is there.
        mine = row is not None and (
            self.principal.is_admin or row.department_code == self.principal.department
        )
        if row is not None and mine and row.case_id == case_id and row.state == DispatchState.CANCELLED:
            raise _cancelled(row)
        await self.access.readable(case_id)
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
        dispatch_id = row.id  # the rollback below expires ``row``
        result = await self.session.exec(
            update(CaseDispatch)
            .where(col(CaseDispatch.id) == dispatch_id, col(CaseDispatch.state).in_(allowed))
            .values(**values)
        )
        if result.rowcount != 1:
            await self.session.rollback()
            now_is = await self.session.get(CaseDispatch, dispatch_id)  # e.g. cancelled meanwhile
            assert now_is is not None
            if now_is.state == DispatchState.CANCELLED:
                raise _cancelled(now_is)
            current = DispatchState(now_is.state)
            label_zh = DISPATCH_STATE_LABELS[current][0]
            raise ApiError(
                409,
                "dispatch_state",
                f"该派单当前为“{label_zh}”，不能再执行此操作",
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

    # --- the leader takes a dispatch back -----------------------------------------------------

    async def _dispatch_of(self, case: Case, dispatch_id: int) -> CaseDispatch:
        row = await self.session.get(CaseDispatch, dispatch_id)
        if row is None or row.case_id != case.id:
            raise ApiError.not_found("派单不存在", "dispatch not found on this case")
        return row

    @staticmethod
    def _refuse_closed(row: CaseDispatch) -> None:
        """A reported dispatch is the case's history, a cancelled one is done: neither changes."""
        if row.state == DispatchState.REPORTED:
            raise ApiError(
                409,
                "dispatch_reported",
                "该派单已反馈，属于案件历史，不能撤销或改派",
                "this dispatch was reported: it is the case's history and cannot be cancelled or reassigned",
            )
        if row.state == DispatchState.CANCELLED:
            raise ApiError(409, "dispatch_cancelled", "该派单已撤销", "this dispatch is already cancelled")

    async def _withdraw(self, row: CaseDispatch, reason: str, now: datetime, **values: Any) -> None:
        """Cancel an open dispatch: compare-and-set on its state, so a report that came first wins."""
        dispatch_id = row.id  # the rollback below expires ``row``
        result = await self.session.exec(
            update(CaseDispatch)
            .where(col(CaseDispatch.id) == dispatch_id, col(CaseDispatch.state).in_(OPEN_DISPATCH_STATES))
            .values(
                state=DispatchState.CANCELLED,
                cancelled_by=self.principal.username,
                cancelled_at=now,
                cancel_reason=reason,
                **values,
            )
        )
        if result.rowcount == 1:
            return
        await self.session.rollback()
        now_is = await self.session.get(CaseDispatch, dispatch_id)
        assert now_is is not None
        self._refuse_closed(now_is)
        raise AssertionError(f"dispatch {dispatch_id} is open but could not be cancelled")

    async def _step_back(self, case: Case, cancelled: CaseDispatch) -> CaseState | None:
        """Where a coordinating case goes once its last dispatch is cancelled: back to the step the
        dispatch had moved it from (problem_found or reopened). None when another dispatch (open or
        reported) still coordinates it, or the case entered coordinating by a leader's own step."""
        if CaseState(case.state) is not CaseState.COORDINATING:
            return None
        others = (
            await self.session.exec(
                select(func.count())
                .select_from(CaseDispatch)
                .where(
                    col(CaseDispatch.case_id) == case.id,
                    col(CaseDispatch.id) != cancelled.id,
                    col(CaseDispatch.state) != DispatchState.CANCELLED,
                )
            )
        ).one()
        if others:
            return None
        entry = (
            await self.session.exec(
                select(CaseEvent)
                .where(col(CaseEvent.case_id) == case.id, col(CaseEvent.to_state) == CaseState.COORDINATING)
                .order_by(col(CaseEvent.id).desc())
                .limit(1)
            )
        ).first()
        if entry is None or not entry.details.get("by_dispatch") or entry.from_state is None:
            return None
        return CaseState(entry.from_state)

    async def cancel(self, case_id: str, dispatch_id: int, body: DispatchCancel) -> str:
        case = await self.access.writable(case_id)
        row = await self._dispatch_of(case, dispatch_id)
        self._refuse_closed(row)
        back = await self._step_back(case, row)
        now = utc_now()
        version = case.version + 1  # read before the update: the session may refresh ``case``
        await self._bump(case, body.expected_version, back, now)  # back: the tablets learn of it
        await self._withdraw(row, body.reason, now)
        self._event(
            case.id, "dispatch_cancelled", body.reason, now, dispatch=row.id, department=row.department_code
        )
        if back is not None:
            # Not a leader's step of the loop (no coordinating → problem_found there): the case goes
            # back because nobody coordinates it any more.
            event = self._event(
                case.id,
                "transition",
                f"派单均已撤销，退回上一步 / every dispatch was cancelled, back one step: {body.reason}",
                now,
                version=version,
                by_dispatch_cancel=row.id,
            )
            event.from_state, event.to_state = str(CaseState.COORDINATING), str(back)
        await refresh_open_deadline(self.session, case.id)
        await self.session.commit()
        return case.id

    async def reassign(self, case_id: str, dispatch_id: int, body: DispatchReassign) -> str:
        case = await self.access.writable(case_id)
        row = await self._dispatch_of(case, dispatch_id)
        self._refuse_closed(row)
        self._check_dispatchable(case)
        if body.department == row.department_code:
            raise ApiError(
                400,
                "bad_request",
                "改派须选择另一个部门",
                "a reassignment needs another department than the current one",
            )
        await self._check_departments(case, [body.department])
        days = body.working_days or row.working_days  # the new department gets the same time, from now
        now = utc_now()
        deadline = self._deadline(now, days)
        await self._bump(case, body.expected_version, None, now)
        replacement = self._add_dispatch(
            case,
            body.department,
            days=days,
            deadline=deadline,
            instructions=row.instructions if body.instructions is None else body.instructions,
            reason=body.reason,
            now=now,
            reassigned_from=row.id,
        )
        replacement.reassigned_from = row.id
        await self.session.flush()
        await self._withdraw(row, body.reason, now, reassigned_to=replacement.id)
        self._event(
            case.id,
            "dispatch_reassigned",
            body.reason,
            now,
            dispatch=row.id,
            department=row.department_code,
            to_department=body.department,
            new_dispatch=replacement.id,
        )
        await refresh_open_deadline(self.session, case.id)
        await self.session.commit()
        return case.id
