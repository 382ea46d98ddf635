"""``/api/refusals``: what the gateway refused at push, for the leaders of the grids concerned.

A refusal concerns the grids and micro-grids its author worked in when it was refused and the place
where the document lies (``refusal_areas``). A grid leader lists those of their grids and of the
micro-grids in them; a leader of micro-grids lists those of their micro-grids only.
"""

from datetime import datetime
from typing import Annotated

from litestar import get
from litestar.params import Parameter
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.auth import Principal
from server.db.models import Refusal, RefusalArea, Role
from server.errors import ApiError
from server.localtime import to_local
from server.runtime import Runtime

__all__ = ["RefusalPublic", "RefusalsPublic", "list_refusals", "refusal_public"]


class RefusalPublic(BaseModel):
    id: int
    username: str
    device_id: str | None
    doc_id: str
    rev: str | None
    doc_type: str | None
    grid_code: str | None = Field(
        description="Grid where the document lies (its location); null without a usable location. "
        "Refusals recorded before 2026-12-02 give their author's first grid."
    )
    micro_grid_code: str | None = Field(description="Micro-grid where the document lies, if any")
    rule: str
    field: str | None
    reason_zh: str
    reason_en: str
    created_at: datetime


def refusal_public(row: Refusal, zone: str) -> RefusalPublic:
    """A recorded refusal as people read it (time in local time)."""
    public = RefusalPublic.model_validate(row, from_attributes=True)
    return public.model_copy(update={"created_at": to_local(row.created_at, zone)})


def _filed_under(codes: list[str]) -> ColumnElement[bool]:
    """Refusals filed under any of these grids or micro-grids."""
    filed = select(RefusalArea.refusal_id).where(col(RefusalArea.code).in_(codes))
    return col(Refusal.id).in_(filed)


class RefusalsPublic(BaseModel):
    data: list[RefusalPublic]
    next_cursor: int | None


@get(
    "/api/refusals",
    summary="Documents refused at sync, newest first",
    description="The refusals of the people of the leader's grids (or micro-grids) and of documents "
    "that lie there. `grid` narrows them to one grid or micro-grid of the leader's scope: a grid "
    "includes its micro-grids.",
    tags=["refusals"],
)
async def list_refusals(
    runtime: Runtime,
    session: AsyncSession,
    principal: Principal,
    grid: Annotated[
        str | None, Parameter(description="a grid or micro-grid code: refusals that concern it")
    ] = None,
    username: str | None = None,
    limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
    cursor: Annotated[int | None, Parameter(description="id of the last refusal already seen")] = None,
) -> RefusalsPublic:
    if principal.role not in {Role.GRID_LEADER, Role.ADMIN}:
        raise ApiError.forbidden("只有网格长可以查看同步拒收记录", "only grid leaders may list refusals")
    query = select(Refusal)
    if not principal.is_admin:
        if grid is not None and not runtime.grids.within(grid, principal.grids):
            raise ApiError.forbidden(f"网格 {grid} 不在您的负责范围", f"grid {grid} is outside your scope")
        query = query.where(_filed_under(list(principal.grids)))
    if grid is not None:
        query = query.where(_filed_under([grid]))
    if username is not None:
        query = query.where(col(Refusal.username) == username)
    if cursor is not None:
        query = query.where(col(Refusal.id) < cursor)
    rows = list((await session.exec(query.order_by(col(Refusal.id).desc()).limit(limit + 1))).all())
    more = len(rows) > limit
    rows = rows[:limit]
    zone = runtime.settings.timezone
    data = [refusal_public(row, zone) for row in rows]
    return RefusalsPublic(data=data, next_cursor=rows[-1].id if more and rows else None)
