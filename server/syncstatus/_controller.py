"""``/api/sync/status``: a user's own sync state, or (leaders, admins) that of a user they answer for."""

from datetime import datetime

from litestar import get
from pydantic import BaseModel
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.auth import Principal
from server.db.models import Role, User
from server.errors import ApiError
from server.localtime import to_local
from server.runtime import Runtime
from server.syncstatus._service import PENDING_CAP, sync_status

__all__ = ["ReplicationPublic", "SyncStatusPublic", "my_sync_status", "user_sync_status"]


class ReplicationPublic(BaseModel):
    checkpoint_id: str
    direction: str
    last_checkpoint_at: datetime
    pending_docs: int | None


class SyncStatusPublic(BaseModel):
    username: str
    last_pull_at: datetime | None
    last_push_at: datetime | None
    pending_docs: int | None
    pending_capped: bool
    up_to_date: bool
    """True only when a pull finished and nothing new waits on the server."""
    summary_zh: str
    summary_en: str
    refusals: int
    last_refusal_at: datetime | None
    replications: list[ReplicationPublic]


def _local(value: datetime | None, zone: str) -> datetime | None:
    return to_local(value, zone) if value is not None else None


async def _status(runtime: Runtime, user: User) -> SyncStatusPublic:
    status = await sync_status(runtime, user)
    zone = runtime.settings.timezone
    up_to_date = status.last_pull_at is not None and status.pending_docs == 0
    if status.last_pull_at is None:
        summary = ("尚未从服务器同步", "never pulled from the server")
    elif up_to_date:
        summary = ("已是最新，服务器上没有待下载的文档", "up to date: nothing waits on the server")
    else:
        more = f"{PENDING_CAP}+" if status.pending_capped else str(status.pending_docs)
        summary = (f"服务器上还有 {more} 条变更待下载", f"{more} changes wait on the server")
    return SyncStatusPublic(
        username=status.username,
        last_pull_at=_local(status.last_pull_at, zone),
        last_push_at=_local(status.last_push_at, zone),
        pending_docs=status.pending_docs,
        pending_capped=status.pending_capped,
        up_to_date=up_to_date,
        summary_zh=summary[0],
        summary_en=summary[1],
        refusals=status.refusals,
        last_refusal_at=_local(status.last_refusal_at, zone),
        replications=[
            ReplicationPublic(
                checkpoint_id=r.checkpoint_id,
                direction=r.direction,
                last_checkpoint_at=to_local(r.last_checkpoint_at, zone),
                pending_docs=r.pending_docs,
            )
            for r in status.replications
        ],
    )


async def _user(session: AsyncSession, username: str) -> User:
    user = (await session.exec(select(User).where(User.username == username))).first()
    if user is None:
        raise ApiError.not_found("用户不存在", "user not found")
    return user


@get("/api/sync/status", summary="My sync state", tags=["sync"])
async def my_sync_status(runtime: Runtime, session: AsyncSession, principal: Principal) -> SyncStatusPublic:
    return await _status(runtime, await _user(session, principal.username))


@get("/api/sync/status/{username:str}", summary="A user's sync state (their leader, admins)", tags=["sync"])
async def user_sync_status(
    runtime: Runtime, session: AsyncSession, principal: Principal, username: str
) -> SyncStatusPublic:
    if principal.username == username or principal.is_admin:
        return await _status(runtime, await _user(session, username))
    # Whoever may not see a user gets the same 403 whether that user exists or not: a 404 for
    # unknown names would let anyone list the accounts.
    refused = ApiError.forbidden("只能查看本网格人员的同步状态", "only the sync state of your grid's people")
    if principal.role is not Role.GRID_LEADER:
        raise refused
    user = (await session.exec(select(User).where(User.username == username))).first()
    # One of a leader's people works wholly within their scope: a coordinator of six grids is not
    # one of a grid's people, nor a volunteer of the whole grid one of a micro-grid's.
    if (
        user is None
        or not user.grids
        or not all(runtime.grids.within(c, principal.grids) for c in user.grids)
    ):
        raise refused
    return await _status(runtime, user)
