"""Who may read and who may act on which case: role × grid, checked in one place.

- admins: every case, every action;
- grid leaders: cases of their grids (an unassigned case by the grid it arrived through), or of
  their micro-grids for a leader scoped to micro-grids; they take the loop's steps, dispatch and
  record follow-ups;
- coordinators: read the cases of their grids, act on none;
- department accounts: read the cases dispatched to their department, and acknowledge and report
  on those dispatches only;
- volunteers: no case API (they see their findings' status on the tablet).

Other case endpoints (split, merge, conflicts) reuse ``CaseAccess.writable`` so the rule stays here.
"""

from collections.abc import Mapping

from sqlalchemy import ColumnElement, and_, false, or_, true
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.auth import Principal
from server.cases._query import department_clause
from server.db.models import Case, Role
from server.errors import ApiError

__all__ = ["CASE_READER_ROLES", "CASE_WRITER_ROLES", "CaseAccess"]

CASE_READER_ROLES = frozenset({Role.GRID_LEADER, Role.ADMIN, Role.COORDINATOR, Role.DEPARTMENT})
CASE_WRITER_ROLES = frozenset({Role.GRID_LEADER, Role.ADMIN})


def _not_found() -> ApiError:
    return ApiError.not_found("案件不存在或不在您的负责范围", "case not found or outside your scope")


class CaseAccess:
    """Scope checks for one principal; construction refuses roles that have no case API.

    ``parent_of`` maps each micro-grid to its grid: a scope code found there is a micro-grid."""

    def __init__(self, session: AsyncSession, principal: Principal, parent_of: Mapping[str, str]) -> None:
        if principal.role not in CASE_READER_ROLES:
            raise ApiError.forbidden(
                "只有网格长、协调员、责任部门和管理员可以查看案件",
                "only grid leaders, coordinators, departments and admins may read cases",
            )
        self.session = session
        self.principal = principal
        self._parent_of = parent_of
        self.grids = [c for c in principal.grids if c not in parent_of]
        self.micro_grids = [c for c in principal.grids if c in parent_of]

    @property
    def can_write(self) -> bool:
        return self.principal.role in CASE_WRITER_ROLES

    def grid_clause(self, grids: list[str]) -> ColumnElement[bool]:
        """Cases of these grids; an unassigned case belongs to the grid it arrived through."""
        return or_(
            col(Case.grid_code).in_(grids),
            and_(col(Case.grid_code).is_(None), col(Case.intake_grid).in_(grids)),
        )

    def scope_clause(self, *, whole_set: bool = False) -> ColumnElement[bool]:
        """SQL condition: the cases this principal may read (``whole_set``: shaped for a count)."""
        principal = self.principal
        if principal.is_admin:
            return true()
        if principal.role is Role.DEPARTMENT:
            if not principal.department:
                return false()
            return department_clause(principal.department, whole_set=whole_set)
        scope = self.grid_clause(self.grids)
        if not self.micro_grids:
            return scope
        # an unassigned case has no micro-grid: it reaches the leaders of its intake grid only
        return or_(scope, col(Case.micro_grid_code).in_(self.micro_grids))

    def scope_grids(self) -> list[str] | None:
        """The grids this principal's scope is limited to (None: not limited by grid)."""
        principal = self.principal
        if principal.is_admin or principal.role is Role.DEPARTMENT:
            return None
        # a micro-grid's cases are searched by their grid, then kept to the micro-grid by scope_clause
        return list(dict.fromkeys([*self.grids, *(self._parent_of[c] for c in self.micro_grids)]))

    def in_write_scope(self, case: Case) -> bool:
        if self.principal.is_admin:
            return True
        if self.principal.role is not Role.GRID_LEADER:
            return False
        if case.micro_grid_code is not None and case.micro_grid_code in self.micro_grids:
            return True
        grid = case.grid_code if case.grid_code is not None else case.intake_grid
        return grid is not None and grid in self.grids

    async def readable(self, case_id: str) -> Case:
        """The case, if this principal may read it (404 otherwise: no hint that it exists)."""
        query = select(Case).where(col(Case.id) == case_id, self.scope_clause())
        case = (await self.session.exec(query)).first()
        if case is None:
            raise _not_found()
        return case

    async def writable(self, case_id: str) -> Case:
        """The case, if this principal may change it: 404 outside read scope, 403 for read-only roles."""
        case = await self.readable(case_id)
        if not self.can_write:
            raise ApiError.forbidden(
                "您的角色只能查看案件，不能办理",
                f"your role ({self.principal.role}) may read cases but not act on them",
            )
        if not self.in_write_scope(case):
            raise ApiError.forbidden("该案件不在您负责的网格", "the case lies outside your grids")
        return case
