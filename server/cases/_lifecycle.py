"""Acting on a case: loop steps and resident follow-ups here; dispatch to departments, their
answers, cancelling and reassigning in ``_dispatching.py`` (on the same shared steps).

Every change appends a ``CaseEvent`` (never edited, never deleted) in the same transaction. Case
changes compare-and-set ``Case.version``, so of two leaders acting on the same version only the
first wins; the other gets 409 and reloads. A state change bumps the ``status_version`` of the
case's findings, so the write-back tells each tablet what happened to its finding.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.auth import Principal
from server.cases._access import CaseAccess
from server.cases._schemas import (
    FollowUpCreate,
    TransitionCreate,
)
from server.cases._transitions import TransitionFacts, TransitionRefused, check_transition
from server.db.locks import lock_findings
from server.db.models import (
    OPEN_DISPATCH_STATES,
    SATISFACTION_LABELS,
    Case,
    CaseDispatch,
    CaseEvent,
    CaseFollowUp,
    CaseState,
    Finding,
    Satisfaction,
    utc_now,
)
from server.errors import ApiError
from server.runtime import Runtime

__all__ = ["CaseActions", "compare_and_set", "open_dispatch", "refresh_open_deadline"]

_FOLLOW_UP_STATES = frozenset({CaseState.FOLLOW_UP, CaseState.CLOSED})
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


def open_dispatch() -> ColumnElement[bool]:
    """A dispatch its department still has to answer (neither reported nor cancelled)."""
    return col(CaseDispatch.state).in_(OPEN_DISPATCH_STATES)


async def refresh_open_deadline(session: AsyncSession, case_id: str) -> None:
    """Recompute ``Case.open_deadline_at`` from the case's open dispatches. Callers hold the case
    row (compare-and-set or ``FOR UPDATE``), so concurrent answers cannot leave it stale."""
    earliest = (
        select(func.min(CaseDispatch.deadline_at))
        .where(col(CaseDispatch.case_id) == case_id, open_dispatch())
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
        self.access = CaseAccess(session, principal, runtime.grids.parent_of)
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
            # The findings' locks before the case row's, as every writer takes them (server.db.locks).
            await lock_findings(self.session, col(Finding.case_id) == case.id)
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

    async def _move(
        self, case: Case, target: CaseState, reason: str, expected: int | None, **details: Any
    ) -> None:
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
        event = self._event(case.id, "transition", reason, now, version=version, **details)
        event.from_state, event.to_state = str(current), str(target)

    # --- endpoints ----------------------------------------------------------------------------

    async def transition(self, case_id: str, body: TransitionCreate) -> str:
        case = await self.access.writable(case_id)
        await self._move(case, body.to, body.reason, body.expected_version)
        await self.session.commit()
        return case.id

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
