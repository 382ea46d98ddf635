"""``/api/users``: admins manage accounts; everyone can read their own (``/api/me``)."""

from typing import Annotated

from litestar import Controller, get, patch, post
from litestar.params import Parameter
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.auth import Principal, hash_password
from server.db.models import Role, User, UserCreate, UserPublic, UserUpdate, check_department
from server.errors import ApiError
from server.runtime import Runtime

__all__ = ["UserController", "me"]


def _require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise ApiError.forbidden("只有管理员可以管理用户", "only admins may manage users")


def _check_grids(runtime: Runtime, grids: list[str]) -> None:
    index = runtime.grids.index
    known = set(index.by_code) if index is not None else set()
    unknown = [code for code in grids if code not in known]
    if unknown:
        raise ApiError(400, "bad_request", f"未知的网格代码 {unknown}", f"unknown grid codes {unknown}")


def _check_department(runtime: Runtime, role: Role | str, department: str | None, grids: list[str]) -> None:
    try:
        check_department(role, department, grids)
    except ValueError as exc:
        en, _, zh = str(exc).partition(" / ")
        raise ApiError(400, "bad_request", zh, en) from exc
    if department is not None and department not in runtime.taxonomy.departments:
        raise ApiError(
            400, "bad_request", f"未知的部门代码 {department}", f"unknown department code {department}"
        )


def _public(user: User) -> UserPublic:
    return UserPublic.model_validate(user, from_attributes=True)


async def _user(session: AsyncSession, username: str) -> User:
    user = (await session.exec(select(User).where(User.username == username))).first()
    if user is None:
        raise ApiError.not_found("用户不存在", "user not found")
    return user


class UserController(Controller):
    path = "/api/users"
    tags = ["users"]

    @get("/", summary="List users (admin)")
    async def list_users(
        self,
        session: AsyncSession,
        principal: Principal,
        grid: Annotated[str | None, Parameter(description="only users whose scope names this code")] = None,
    ) -> list[UserPublic]:
        _require_admin(principal)
        users = (await session.exec(select(User).order_by(col(User.username)))).all()
        return [_public(u) for u in users if grid is None or grid in u.grids]

    @post("/", summary="Create a user (admin)")
    async def create_user(
        self, runtime: Runtime, session: AsyncSession, principal: Principal, data: UserCreate
    ) -> UserPublic:
        _require_admin(principal)
        _check_grids(runtime, list(data.grids))
        _check_department(runtime, data.role, data.department, list(data.grids))
        user = User(
            username=data.username,
            display_name=data.display_name,
            role=data.role,
            grids=list(data.grids),
            department=data.department,
            password_hash=hash_password(data.password),
        )
        session.add(user)
        try:
            await session.commit()
        except IntegrityError as exc:
            raise ApiError(409, "conflict", "用户名已存在", "username already exists") from exc
        await session.refresh(user)
        return _public(user)

    @get("/{username:str}", summary="One user (admin)")
    async def get_user(self, session: AsyncSession, principal: Principal, username: str) -> UserPublic:
        _require_admin(principal)
        return _public(await _user(session, username))

    @patch("/{username:str}", summary="Change role, scope, password or deactivate (admin)")
    async def update_user(
        self, runtime: Runtime, session: AsyncSession, principal: Principal, username: str, data: UserUpdate
    ) -> UserPublic:
        _require_admin(principal)
        user = await _user(session, username)
        changes = data.model_dump(exclude_unset=True)
        if "grids" in changes:
            _check_grids(runtime, list(changes["grids"] or []))
        password = changes.pop("password", None)
        for key, value in changes.items():
            setattr(user, key, value)
        _check_department(runtime, user.role, user.department, list(user.grids))
        if password:
            user.password_hash = hash_password(password)
        session.add(user)
        await session.commit()
        await session.refresh(user)
        runtime.authenticator.forget(user.username)
        return _public(user)


@get("/api/me", summary="The signed-in user", tags=["users"])
async def me(session: AsyncSession, principal: Principal) -> UserPublic:
    return _public(await _user(session, principal.username))
