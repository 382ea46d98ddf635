"""``/api/audit/admin``: every request an admin made to the document store (admins only)."""

from datetime import datetime
from typing import Annotated

from litestar import get
from litestar.params import Parameter
from pydantic import BaseModel
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.auth import Principal
from server.db.models import AdminAudit
from server.errors import ApiError
from server.localtime import to_local
from server.runtime import Runtime

__all__ = ["AdminAuditPublic", "AdminAuditsPublic", "list_admin_audit"]


class AdminAuditPublic(BaseModel):
    id: int
    at: datetime
    username: str
    method: str
    path: str
    status: int


class AdminAuditsPublic(BaseModel):
    data: list[AdminAuditPublic]
    next_cursor: int | None


@get("/api/audit/admin", summary="Admin requests to the document store, newest first", tags=["audit"])
async def list_admin_audit(
    runtime: Runtime,
    session: AsyncSession,
    principal: Principal,
    username: str | None = None,
    limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
    cursor: Annotated[int | None, Parameter(description="id of the last entry already seen")] = None,
) -> AdminAuditsPublic:
    if not principal.is_admin:
        raise ApiError.forbidden("只有管理员可以查看审计记录", "only admins may read the audit log")
    query = select(AdminAudit)
    if username is not None:
        query = query.where(col(AdminAudit.username) == username)
    if cursor is not None:
        query = query.where(col(AdminAudit.id) < cursor)
    rows = list((await session.exec(query.order_by(col(AdminAudit.id).desc()).limit(limit + 1))).all())
    more = len(rows) > limit
    rows = rows[:limit]
    zone = runtime.settings.timezone
    data = [
        AdminAuditPublic(
            id=row.id or 0,
            at=to_local(row.at, zone),
            username=row.username,
            method=row.method,
            path=row.path,
            status=row.status,
        )
        for row in rows
    ]
    return AdminAuditsPublic(data=data, next_cursor=rows[-1].id if more and rows else None)
