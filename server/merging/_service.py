"""Split and merge cases by hand; list and resolve document conflicts. Role × grid is checked by
``CaseReader`` (grid leaders of the case's grid, or admins), once, as for every case endpoint."""

from collections.abc import Sequence

from sqlalchemy import ColumnElement, or_, true, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from field_schema import DocumentInvalid, validate_document
from server.auth import Principal
from server.cases import CaseReader
from server.cases._lifecycle import compare_and_set, open_dispatch, refresh_open_deadline
from server.conflicts import ConflictPublic, ConflictsPublic, conflict_public
from server.db.locks import lock_findings
from server.db.models import (
    Case,
    CaseDispatch,
    CaseEvent,
    CaseLink,
    CaseState,
    Conflict,
    ConflictStatus,
    Finding,
    new_case_id,
    utc_now,
)
from server.errors import ApiError
from server.merging._schemas import ConflictResolveInput, MergeResultPublic
from server.runtime import Runtime
from sync.case_numbers import allocate_case_numbers
from sync.case_search import refresh_case_search
from sync.case_view import refresh_case_view
from sync.couch import CouchNotFound
from sync.merge_outbox import record_resolution, resolution_plan, settle_claimed

__all__ = ["CaseMerger", "ConflictDesk"]


def _conflict_error(reason_zh: str, reason_en: str) -> ApiError:
    return ApiError(409, "conflict", reason_zh, reason_en)


def _changed_meanwhile() -> ApiError:
    return _conflict_error(
        "记录在此期间又被修改，请刷新后重新裁决",
        "the document changed meanwhile; reload the conflict and decide again",
    )


def _already_settled() -> ApiError:
    return _conflict_error("该冲突已处理", "this conflict is already settled")


def _bad_request(reason_zh: str, reason_en: str) -> ApiError:
    return ApiError(400, "bad_request", reason_zh, reason_en)


class CaseMerger:
    """A leader's corrections to what the worker joined."""

    def __init__(self, runtime: Runtime, session: AsyncSession, principal: Principal) -> None:
        self.reader = CaseReader(runtime, session, principal)
        self.runtime = runtime
        self.session = session
        self.principal = principal

    async def _findings(self, case_id: str) -> list[Finding]:
        """The case's findings, locked (``server.db.locks``), oldest first."""
        locked = await lock_findings(self.session, col(Finding.case_id) == case_id)
        return sorted(locked, key=lambda f: (f.received_at, f.doc_id))

    async def _conflicts_follow(self, findings: Sequence[Finding], case: Case) -> None:
        """A moved finding's conflicts move with it: the desk of the case's leader lists them, and
        the by-case listing shows them there (both read ``Conflict.case_id``)."""
        doc_ids = [f.doc_id for f in findings]
        if doc_ids:
            await self.session.exec(
                update(Conflict).where(col(Conflict.doc_id).in_(doc_ids)).values(case_id=case.id)
            )

    def _move(self, finding: Finding, case: Case, kind: str) -> None:
        finding.case_id = case.id
        finding.status_version += 1  # the tablet should learn its new case number
        self.session.add(finding)
        self.session.add(
            CaseLink(
                finding_id=finding.doc_id,
                case_id=case.id,
                kind=kind,
                actor=self.principal.username,
                author=finding.author,
            )
        )

    async def _move_open_dispatches(self, source: Case, target: Case) -> list[dict[str, object]]:
        """Departments still working on the absorbed case now answer on the surviving one. Reported
        and cancelled dispatches stay on the absorbed case: they are its history and need nothing
        more."""
        rows = await self.session.exec(
            select(CaseDispatch)
            .where(col(CaseDispatch.case_id) == source.id, open_dispatch())
            .order_by(col(CaseDispatch.id))
        )
        moved: list[dict[str, object]] = []
        for dispatch in rows.all():
            dispatch.case_id = target.id
            self.session.add(dispatch)
            moved.append({"dispatch": dispatch.id, "department": dispatch.department_code})
        return moved

    async def split(self, case_id: str, doc_ids: Sequence[str], reason: str) -> MergeResultPublic:
        case = await self.reader.get(case_id)
        findings = await self._findings(case.id)
        wanted = set(doc_ids)
        moving = [f for f in findings if f.doc_id in wanted]
        missing = wanted - {f.doc_id for f in moving}
        if missing:
            raise _bad_request(
                f"这些记录不在本案件中：{', '.join(sorted(missing))}",
                f"not findings of this case: {', '.join(sorted(missing))}",
            )
        if len(moving) == len(findings):
            raise _bad_request("拆分后原案件不能为空", "a split must leave at least one finding in the case")
        first = moving[0]
        now = utc_now()
        await compare_and_set(self.session, case, None, updated_at=now)  # 409 if someone acted first
        [number] = await allocate_case_numbers(
            self.session, case.grid_code, 1, zone=self.runtime.settings.timezone, now=now
        )
        new_case = Case(
            id=new_case_id(now),
            case_no=number,
            grid_code=case.grid_code,
            micro_grid_code=case.micro_grid_code,
            intake_grid=case.intake_grid,
            assignment=case.assignment,
            assignment_candidates=list(case.assignment_candidates),
            concern_code=first.concern_code,
            severity=first.severity,
            state=CaseState.PROBLEM_FOUND,
            lat=first.lat,
            lon=first.lon,
            summary=first.note[:500],
            created_at=now,
            updated_at=now,
        )
        self.session.add(new_case)
        await self.session.flush()
        for finding in moving:
            self._move(finding, new_case, "split")
        await self._conflicts_follow(moving, new_case)
        # Both cases show what their live findings say now (as after a revision or a withdrawal).
        await refresh_case_view(self.session, case)
        await refresh_case_view(self.session, new_case)
        await refresh_case_search(self.session, [case.id, new_case.id])
        moved = [f.doc_id for f in moving]
        actor = self.principal.username
        self.session.add(
            CaseEvent(
                case_id=case.id,
                actor=actor,
                action="split_out",
                reason=reason or "网格长拆分案件 / split by the grid leader",
                details={"findings": moved, "new_case": new_case.id, "new_case_no": new_case.case_no},
            )
        )
        self.session.add(
            CaseEvent(
                case_id=new_case.id,
                actor=actor,
                action="split_from",
                to_state=str(CaseState.PROBLEM_FOUND),
                reason=reason or "网格长拆分案件 / split by the grid leader",
                details={"findings": moved, "from_case": case.id, "from_case_no": case.case_no},
            )
        )
        await self.session.commit()
        return MergeResultPublic(
            case_id=new_case.id,
            case_no=new_case.case_no,
            other_case_id=case.id,
            other_case_no=case.case_no,
            moved_findings=moved,
        )

    async def merge(self, case_id: str, other_case_id: str, reason: str) -> MergeResultPublic:
        case = await self.reader.get(case_id)
        other = await self.reader.get(other_case_id)
        if other.id == case.id:
            raise _bad_request("不能与自身合并", "a case cannot absorb itself")
        if other.grid_code != case.grid_code:
            raise _bad_request("只能合并同一网格的案件", "only cases of the same grid can be merged")
        if case.grid_code is None and other.intake_grid != case.intake_grid:
            raise _bad_request(
                "只能合并同一接收网格的未分配案件",
                "unassigned cases can only be merged within one intake grid",
            )
        if CaseState.CLOSED in (CaseState(case.state), CaseState(other.state)):
            raise _conflict_error("已办结的案件不能合并", "closed cases cannot be merged")
        other_state = str(other.state)
        now = utc_now()
        # Both rows compare-and-set in id order (no deadlock between two opposite merges): a
        # transition still holding the version read before the merge gets 409.
        closing: dict[str, dict[str, object]] = {case.id: {}, other.id: {"state": CaseState.CLOSED}}
        await self._findings(other.id)  # their locks before the case rows', as every writer takes them
        for row in sorted((case, other), key=lambda c: c.id):
            await compare_and_set(self.session, row, None, updated_at=now, **closing[row.id])
        # Read again inside the write: on SQLite the first read came before its write lock.
        moving = await self._findings(other.id)
        for finding in moving:
            self._move(finding, case, "merged")
        await self._conflicts_follow(moving, case)
        await refresh_case_view(self.session, case)  # the absorbed case keeps what it showed last
        moved = [f.doc_id for f in moving]
        dispatches = await self._move_open_dispatches(other, case)
        actor = self.principal.username
        self.session.add(
            CaseEvent(
                case_id=case.id,
                actor=actor,
                action="merged_from",
                reason=reason or "网格长合并案件 / merged by the grid leader",
                details={
                    "findings": moved,
                    "dispatches": dispatches,
                    "from_case": other.id,
                    "from_case_no": other.case_no,
                },
            )
        )
        self.session.add(
            CaseEvent(
                case_id=other.id,
                actor=actor,
                action="merged_into",
                from_state=other_state,
                to_state=str(CaseState.CLOSED),
                reason=reason or "网格长合并案件 / merged by the grid leader",
                details={
                    "findings": moved,
                    "dispatches": dispatches,
                    "into_case": case.id,
                    "into_case_no": case.case_no,
                },
            )
        )
        await self.session.flush()
        for case_with_dispatches in sorted((case.id, other.id)):
            await refresh_open_deadline(self.session, case_with_dispatches)
        await refresh_case_search(self.session, [case.id, other.id])
        await self.session.commit()
        return MergeResultPublic(
            case_id=case.id,
            case_no=case.case_no,
            other_case_id=other.id,
            other_case_no=other.case_no,
            moved_findings=moved,
        )


class ConflictDesk:
    """Hard conflicts side by side for the leader, and the leader's resolution written back."""

    def __init__(self, runtime: Runtime, session: AsyncSession, principal: Principal) -> None:
        self.reader = CaseReader(runtime, session, principal)  # checks the role
        self.runtime = runtime
        self.session = session
        self.principal = principal

    def _scope(self) -> ColumnElement[bool]:
        """Conflicts of the leader's grids; a leader scoped to micro-grids has those of the cases
        in their micro-grids (a conflict not yet on a case is the grid leaders')."""
        if self.principal.is_admin:
            return true()
        access = self.reader.access
        in_scope = [col(Conflict.grid_code).in_(access.grids)]
        if access.micro_grids:
            cases_there = select(Case.id).where(col(Case.micro_grid_code).in_(access.micro_grids))
            in_scope.append(col(Conflict.case_id).in_(cases_there))
        return or_(*in_scope)

    async def search(
        self, *, grid: str | None = None, status: str | None = None, case_id: str | None = None
    ) -> ConflictsPublic:
        scope_grids = self.reader.access.scope_grids()
        if grid is not None and scope_grids is not None and grid not in scope_grids:
            raise ApiError.forbidden(f"网格 {grid} 不在您的负责范围", f"grid {grid} is outside your scope")
        query = select(Conflict).where(self._scope())
        if case_id is not None:
            await self.reader.get(case_id)
            query = query.where(Conflict.case_id == case_id)
        if grid is not None:
            query = query.where(Conflict.grid_code == grid)
        if status is not None:
            query = query.where(Conflict.status == status)
        rows = (await self.session.exec(query.order_by(col(Conflict.id)))).all()
        return ConflictsPublic(data=[self.public(c) for c in rows], count=len(rows))

    async def get(self, conflict_id: int) -> Conflict:
        conflict = (
            await self.session.exec(select(Conflict).where(Conflict.id == conflict_id, self._scope()))
        ).first()
        if conflict is None:
            raise ApiError.not_found(
                "冲突不存在或不在您的负责范围", "conflict not found or outside your scope"
            )
        return conflict

    def public(self, conflict: Conflict) -> ConflictPublic:
        return conflict_public(conflict, self.runtime.settings.timezone)

    async def resolve(self, conflict_id: int, choice: ConflictResolveInput) -> tuple[ConflictPublic, bool]:
        """Write the leader's resolution back; the conflict and whether CouchDB has it already
        (False: recorded, and a worker writes it as soon as CouchDB answers again)."""
        conflict = await self.get(conflict_id)
        if conflict.status == ConflictStatus.MERGE_PENDING:
            if conflict.resolution is not None:
                raise _conflict_error(
                    "该冲突的裁决正在写回", "a resolution of this conflict is being written back"
                )
            raise _conflict_error(
                "该冲突正在自动合并，无需裁决",
                "this conflict is being merged automatically; nothing to decide",
            )
        if conflict.status != ConflictStatus.OPEN:
            raise _already_settled()
        couch, db = self.runtime.couch, conflict.source_db
        try:
            current = await couch.get_doc(db, conflict.doc_id, params={"conflicts": "true"})
        except CouchNotFound as exc:
            raise _conflict_error("记录已被删除", "the document has been deleted meanwhile") from exc
        leaves = [str(current["_rev"]), *[str(r) for r in current.get("_conflicts", [])]]
        if sorted(leaves) != sorted(conflict.leaves_key.split(" ")):
            raise _changed_meanwhile()
        wanted = {choice.choose} if choice.choose else set((choice.fields or {}).values())
        unknown = wanted - set(leaves)
        if unknown:
            raise _bad_request(
                f"未知版本：{', '.join(sorted(unknown))}", f"unknown revisions: {', '.join(sorted(unknown))}"
            )
        plan, body = await resolution_plan(couch, conflict, choice.choose, choice.fields)
        try:
            validate_document(body, self.runtime.taxonomy)
        except DocumentInvalid as exc:
            raise _bad_request(f"裁决结果无效：{exc}", f"the resolved document is invalid: {exc}") from exc
        assert conflict.id is not None
        holder = f"api:{self.principal.username}"
        decision = {
            "by": self.principal.username,
            "choose": choice.choose,
            "fields": choice.fields,
            "reason": choice.reason or None,
        }
        sessions, lease_s = self.runtime.sessions, self.runtime.settings.worker.lease_s
        recorded = await record_resolution(
            sessions, conflict.id, plan, decision, holder=holder, lease_s=lease_s
        )
        if recorded is None:
            raise _already_settled()
        await settle_claimed(sessions, self.runtime.couch, recorded, holder, plan)
        # What the row says now, whoever settled it (this request, or a worker that took over).
        await self.session.refresh(conflict)
        if conflict.status == ConflictStatus.SUPERSEDED:
            raise _changed_meanwhile()
        if conflict.status == ConflictStatus.OPEN:
            raise _conflict_error(
                f"写回被拒绝，请重新裁决：{conflict.last_error}",
                f"the document store refused the resolution; decide again: {conflict.last_error}",
            )
        return self.public(conflict), conflict.status == ConflictStatus.RESOLVED
