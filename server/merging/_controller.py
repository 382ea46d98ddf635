"""``/api/cases/{id}/split``, ``/api/cases/{id}/merge``, ``/api/cases/{id}/conflicts`` and
``/api/conflicts``: grid leaders (own grids, or the cases of their micro-grids) and admins."""

from typing import Annotated

from litestar import Controller, Response, get, post
from litestar.openapi import ResponseSpec
from litestar.params import Parameter
from sqlmodel.ext.asyncio.session import AsyncSession

from server.auth import Principal
from server.conflicts import ConflictPublic, ConflictsPublic
from server.merging._schemas import CaseMergeInput, CaseSplitInput, ConflictResolveInput, MergeResultPublic
from server.merging._service import CaseMerger, ConflictDesk
from server.runtime import Runtime

__all__ = ["CaseMergingController", "ConflictController"]


class CaseMergingController(Controller):
    path = "/api/cases/{case_id:str}"
    tags = ["cases"]

    @post("/split", summary="Move findings of a case to a new case", status_code=201)
    async def split(
        self,
        runtime: Runtime,
        session: AsyncSession,
        principal: Principal,
        case_id: str,
        data: CaseSplitInput,
    ) -> MergeResultPublic:
        return await CaseMerger(runtime, session, principal).split(case_id, data.findings, data.reason)

    @post("/merge", summary="Absorb another case of the same grid", status_code=200)
    async def merge(
        self,
        runtime: Runtime,
        session: AsyncSession,
        principal: Principal,
        case_id: str,
        data: CaseMergeInput,
    ) -> MergeResultPublic:
        return await CaseMerger(runtime, session, principal).merge(case_id, data.other_case_id, data.reason)

    @get("/conflicts", summary="Document conflicts of a case")
    async def case_conflicts(
        self, runtime: Runtime, session: AsyncSession, principal: Principal, case_id: str
    ) -> ConflictsPublic:
        return await ConflictDesk(runtime, session, principal).search(case_id=case_id)


class ConflictController(Controller):
    path = "/api/conflicts"
    tags = ["conflicts"]

    @get("/", summary="Document conflicts in my grids")
    async def list_conflicts(
        self,
        runtime: Runtime,
        session: AsyncSession,
        principal: Principal,
        grid: str | None = None,
        conflict_status: Annotated[str | None, Parameter(query="status")] = None,
    ) -> ConflictsPublic:
        return await ConflictDesk(runtime, session, principal).search(grid=grid, status=conflict_status)

    @get("/{conflict_id:int}", summary="One conflict, branches side by side")
    async def get_conflict(
        self, runtime: Runtime, session: AsyncSession, principal: Principal, conflict_id: int
    ) -> ConflictPublic:
        desk = ConflictDesk(runtime, session, principal)
        return desk.public(await desk.get(conflict_id))

    @post(
        "/{conflict_id:int}/resolve",
        summary="Write the leader's resolution back to CouchDB",
        description="200: written, tablets converge on their next pull. 202: the decision is recorded "
        "(status merge_pending) and a worker writes it once CouchDB answers again.",
        status_code=200,
        responses={
            202: ResponseSpec(ConflictPublic, description="Recorded; a worker writes it when CouchDB answers")
        },
    )
    async def resolve(
        self,
        runtime: Runtime,
        session: AsyncSession,
        principal: Principal,
        conflict_id: int,
        data: ConflictResolveInput,
    ) -> Response[ConflictPublic]:
        conflict, written = await ConflictDesk(runtime, session, principal).resolve(conflict_id, data)
        return Response(conflict, status_code=200 if written else 202)
