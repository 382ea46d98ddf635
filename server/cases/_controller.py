"""``/api/cases``: grid leaders read the cases of their grids."""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Annotated

from litestar import Controller, get
from litestar.params import Parameter
from litestar.response import Stream
from sqlmodel.ext.asyncio.session import AsyncSession

from server.auth import Principal
from server.cases._schemas import CasePublic, CasesPublic
from server.cases._service import CaseReader
from server.db.models import CaseState
from server.errors import ApiError
from server.runtime import Runtime
from sync.couch import CouchNotFound, doc_path

__all__ = ["CaseController"]


class CaseController(Controller):
    path = "/api/cases"
    tags = ["cases"]

    @get("/", summary="List cases of my grids")
    async def list_cases(
        self,
        runtime: Runtime,
        session: AsyncSession,
        principal: Principal,
        grid: str | None = None,
        case_state: Annotated[CaseState | None, Parameter(query="state")] = None,
        concern: str | None = None,
        limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
        cursor: str | None = None,
    ) -> CasesPublic:
        reader = CaseReader(runtime, session, principal)
        return await reader.search(grid=grid, state=case_state, concern=concern, limit=limit, cursor=cursor)

    @get("/{case_id:str}", summary="One case with its findings")
    async def get_case(
        self, runtime: Runtime, session: AsyncSession, principal: Principal, case_id: str
    ) -> CasePublic:
        reader = CaseReader(runtime, session, principal)
        case = await reader.get(case_id)
        findings = await reader.findings_of([case.id])
        return reader.public(case, findings.get(case.id, []))

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
        finding = await CaseReader(runtime, session, principal).finding(case_id, doc_id)
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
