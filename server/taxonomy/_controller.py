"""``/api/taxonomy``: the problem taxonomy, read and edited by admins only (tablets read it from the
reference database instead)."""

from typing import Annotated

from litestar import Controller, get, patch, post
from litestar.params import Parameter
from sqlmodel.ext.asyncio.session import AsyncSession

from server.auth import Principal
from server.runtime import Runtime
from server.taxonomy._schemas import (
    CategoryChanged,
    CategoryCreate,
    CategoryUpdate,
    ConcernChanged,
    ConcernCreate,
    ConcernUpdate,
    DepartmentChanged,
    DepartmentCreate,
    DepartmentUpdate,
    ReloadReport,
    TaxonomyChangesPublic,
    TaxonomyPublic,
)
from server.taxonomy._service import TaxonomyAdmin

__all__ = ["TaxonomyController"]

CodeParam = Annotated[str, Parameter(max_length=32)]


class TaxonomyController(Controller):
    path = "/api/taxonomy"
    tags = ["taxonomy"]

    @get("/", summary="The whole taxonomy, retired entries included")
    async def get_taxonomy(
        self, runtime: Runtime, session: AsyncSession, principal: Principal
    ) -> TaxonomyPublic:
        return await TaxonomyAdmin(runtime, session, principal).current()

    @post("/categories", summary="Add a category (code allocated when omitted; never reused)")
    async def add_category(
        self, runtime: Runtime, session: AsyncSession, principal: Principal, data: CategoryCreate
    ) -> CategoryChanged:
        return await TaxonomyAdmin(runtime, session, principal).add_category(data)

    @patch("/categories/{code:str}", summary="Rename, retire or reinstate a category")
    async def update_category(
        self,
        runtime: Runtime,
        session: AsyncSession,
        principal: Principal,
        code: CodeParam,
        data: CategoryUpdate,
    ) -> CategoryChanged:
        return await TaxonomyAdmin(runtime, session, principal).update_category(code, data)

    @post("/departments", summary="Add a department that cases can be dispatched to (code never reused)")
    async def add_department(
        self, runtime: Runtime, session: AsyncSession, principal: Principal, data: DepartmentCreate
    ) -> DepartmentChanged:
        return await TaxonomyAdmin(runtime, session, principal).add_department(data)

    @patch("/departments/{code:str}", summary="Rename, retire or reinstate a department")
    async def update_department(
        self,
        runtime: Runtime,
        session: AsyncSession,
        principal: Principal,
        code: CodeParam,
        data: DepartmentUpdate,
    ) -> DepartmentChanged:
        return await TaxonomyAdmin(runtime, session, principal).update_department(code, data)

    @post("/concerns", summary="Add a concern (code allocated in its category when omitted; never reused)")
    async def add_concern(
        self, runtime: Runtime, session: AsyncSession, principal: Principal, data: ConcernCreate
    ) -> ConcernChanged:
        return await TaxonomyAdmin(runtime, session, principal).add_concern(data)

    @patch("/concerns/{code:str}", summary="Edit, retire or reinstate a concern")
    async def update_concern(
        self,
        runtime: Runtime,
        session: AsyncSession,
        principal: Principal,
        code: CodeParam,
        data: ConcernUpdate,
    ) -> ConcernChanged:
        return await TaxonomyAdmin(runtime, session, principal).update_concern(code, data)

    @post("/reload", summary="Import the taxonomy file into SQL and publish it", status_code=200)
    async def reload(self, runtime: Runtime, session: AsyncSession, principal: Principal) -> ReloadReport:
        return await TaxonomyAdmin(runtime, session, principal).reload()

    @get("/changes", summary="Audit trail: who changed what, newest first")
    async def changes(
        self,
        runtime: Runtime,
        session: AsyncSession,
        principal: Principal,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
    ) -> TaxonomyChangesPublic:
        return await TaxonomyAdmin(runtime, session, principal).changes(limit)
