"""Dependencies shared by the API controllers: the runtime, a SQL session and the signed-in user."""

from collections.abc import AsyncIterator
from typing import Any

from litestar import Request
from litestar.datastructures import State
from sqlmodel.ext.asyncio.session import AsyncSession

from server.auth import SESSION_COOKIE, Principal, parse_credentials
from server.errors import ApiError
from server.runtime import Runtime

__all__ = ["provide_principal", "provide_runtime", "provide_session"]


def provide_runtime(state: State) -> Runtime:
    runtime: Runtime = state.runtime
    return runtime


async def provide_session(runtime: Runtime) -> AsyncIterator[AsyncSession]:
    async with runtime.sessions() as session:
        yield session


async def provide_principal(request: Request[Any, Any, Any], runtime: Runtime) -> Principal:
    credentials = parse_credentials(request.headers.get("authorization"), request.cookies.get(SESSION_COOKIE))
    if credentials is None:
        raise ApiError.unauthorized()
    return await runtime.authenticator.authenticate(credentials)
