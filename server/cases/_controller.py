"""``/api/cases``: read cases in scope, take loop steps, dispatch, answer, cancel and reassign
dispatches, follow up."""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Annotated

from litestar import Controller, get, post
from litestar.params import Parameter
from litestar.response import Stream
from sqlmodel.ext.asyncio.session import AsyncSession

from server.auth import Principal
from server.cases._access import CASE_READER_ROLES
from server.cases._dispatching import DispatchActions
from server.cases._lifecycle import CaseActions
from server.cases._query import BBox, CaseFilters, search_text
from server.cases._schemas import (
    CaseDetailPublic,
    CasesPublic,
    DispatchAcknowledge,
    DispatchCancel,
    DispatchCreate,
    DispatchReassign,
    DispatchReport,
    FollowUpCreate,
    TransitionCreate,
)
from server.cases._service import CaseReader
from server.db.models import CaseState
from server.errors import ApiError
from server.runtime import Runtime
from sync.couch import CouchNotFound, doc_path

__all__ = ["CaseController"]


class CaseController(Controller):
    path = "/api/cases"
    tags = ["cases"]

    @get("/", summary="List and filter cases in my scope (newest first, stable cursor)")
    async def list_cases(
        self,
        runtime: Runtime,
        session: AsyncSession,
        principal: Principal,
        grid: str | None = None,
        micro_grid: str | None = None,
        case_state: Annotated[CaseState | None, Parameter(query="state")] = None,
        concern: str | None = None,
        department: str | None = None,
        overdue: bool | None = None,
        bbox: Annotated[str | None, Parameter(description="min_lon,min_lat,max_lon,max_lat (WGS-84)")] = None,
        q: Annotated[
            str | None,
            Parameter(
                max_length=100,
                description="text in summary, case number or notes (substring; no control characters)",
            ),
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
        cursor: str | None = None,
    ) -> CasesPublic:
        filters = CaseFilters(
            grid=grid,
            micro_grid=micro_grid,
            state=case_state,
            concern=concern,
            department=department,
            overdue=overdue,
            bbox=BBox.parse(bbox) if bbox else None,
            text=search_text(q),
        )
        return await CaseReader(runtime, session, principal, roles=CASE_READER_ROLES).search(
            filters, limit=limit, cursor=cursor
        )

    @get("/{case_id:str}", summary="One case: findings, dispatches, follow-ups, audit trail, refusals")
    async def get_case(
        self, runtime: Runtime, session: AsyncSession, principal: Principal, case_id: str
    ) -> CaseDetailPublic:
        reader = CaseReader(runtime, session, principal, roles=CASE_READER_ROLES)
        return await reader.detail(await reader.get(case_id))

    async def _answer(
        self, runtime: Runtime, session: AsyncSession, principal: Principal, case_id: str
    ) -> CaseDetailPublic:
        reader = CaseReader(runtime, session, principal, roles=CASE_READER_ROLES)
        return await reader.detail(await reader.get(case_id))

    @post("/{case_id:str}/transitions", summary="Take a step of the five-step loop (reason required)")
    async def transition(
        self,
        runtime: Runtime,
        session: AsyncSession,
        principal: Principal,
        case_id: str,
        data: TransitionCreate,
    ) -> CaseDetailPublic:
        await CaseActions(runtime, session, principal).transition(case_id, data)
        return await self._answer(runtime, session, principal, case_id)

    @post("/{case_id:str}/dispatches", summary="Dispatch to one or more departments (吹哨报到)")
    async def dispatch(
        self,
        runtime: Runtime,
        session: AsyncSession,
        principal: Principal,
        case_id: str,
        data: DispatchCreate,
    ) -> CaseDetailPublic:
        await DispatchActions(runtime, session, principal).dispatch(case_id, data)
        return await self._answer(runtime, session, principal, case_id)

    @post(
        "/{case_id:str}/dispatches/{dispatch_id:int}/acknowledge",
        summary="The department reports in (报到)",
        status_code=200,
    )
    async def acknowledge(
        self,
        runtime: Runtime,
        session: AsyncSession,
        principal: Principal,
        case_id: str,
        dispatch_id: int,
        data: DispatchAcknowledge,
    ) -> CaseDetailPublic:
        await DispatchActions(runtime, session, principal).acknowledge(case_id, dispatch_id, data)
        return await self._answer(runtime, session, principal, case_id)

    @post(
        "/{case_id:str}/dispatches/{dispatch_id:int}/report",
        summary="The department reports back what it did",
        status_code=200,
    )
    async def report(
        self,
        runtime: Runtime,
        session: AsyncSession,
        principal: Principal,
        case_id: str,
        dispatch_id: int,
        data: DispatchReport,
    ) -> CaseDetailPublic:
        await DispatchActions(runtime, session, principal).report(case_id, dispatch_id, data)
        return await self._answer(runtime, session, principal, case_id)

    @post(
        "/{case_id:str}/dispatches/{dispatch_id:int}/cancel",
        summary="Withdraw an unreported dispatch (wrong department), with a reason",
        status_code=200,
    )
    async def cancel_dispatch(
        self,
        runtime: Runtime,
        session: AsyncSession,
        principal: Principal,
        case_id: str,
        dispatch_id: int,
        data: DispatchCancel,
    ) -> CaseDetailPublic:
        await DispatchActions(runtime, session, principal).cancel(case_id, dispatch_id, data)
        return await self._answer(runtime, session, principal, case_id)

    @post(
        "/{case_id:str}/dispatches/{dispatch_id:int}/reassign",
        summary="Give an unreported dispatch to another department, with a reason",
        status_code=200,
    )
    async def reassign_dispatch(
        self,
        runtime: Runtime,
        session: AsyncSession,
        principal: Principal,
        case_id: str,
        dispatch_id: int,
        data: DispatchReassign,
    ) -> CaseDetailPublic:
        await DispatchActions(runtime, session, principal).reassign(case_id, dispatch_id, data)
        return await self._answer(runtime, session, principal, case_id)

    @post("/{case_id:str}/follow-ups", summary="Record the resident follow-up (回访) and satisfaction")
    async def follow_up(
        self,
        runtime: Runtime,
        session: AsyncSession,
        principal: Principal,
        case_id: str,
        data: FollowUpCreate,
    ) -> CaseDetailPublic:
        await CaseActions(runtime, session, principal).follow_up(case_id, data)
        return await self._answer(runtime, session, principal, case_id)

    @get("/{case_id:str}/findings/{doc_id:str}/photos/{name:str}", summary="A photo of a finding")
    async def get_photo(
        self,
        runtime: Runtime,
        session: AsyncSession,
        principal: Principal,
        case_id: str,
        doc_id: str,
        name: str,
    ) -> Stream:
        finding = await CaseReader(runtime, session, principal, roles=CASE_READER_ROLES).finding(
            case_id, doc_id
        )
        if name not in finding.photos:
            raise ApiError.not_found("照片不存在", "photo not found")
        stack = AsyncExitStack()
        try:
            response = await stack.enter_async_context(
                runtime.couch.stream("GET", doc_path(finding.source_db, doc_id, name))
            )
        except CouchNotFound as exc:
            raise ApiError.not_found("照片不存在", "photo not found") from exc
        headers = {k: v for k, v in response.headers.items() if k.lower() in {"content-type", "etag"}}

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_raw():
                    yield chunk
            finally:
                await stack.aclose()

        return Stream(content=body(), headers=headers)
