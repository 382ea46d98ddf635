"""Taxonomy administration: admins only; every change is checked as a whole, audited as one
revision, swapped into the running process and published to the reference database."""

import logging
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from field_schema import Taxonomy, TaxonomyError, load_taxonomy, next_category_code, next_concern_code
from server.auth import Principal
from server.db.models import TaxonomyEntry, utc_now
from server.errors import ApiError
from server.localtime import to_local
from server.runtime import Runtime
from server.taxonomy._schemas import (
    CategoryChanged,
    CategoryCreate,
    CategoryPublic,
    CategoryUpdate,
    ConcernChanged,
    ConcernCreate,
    ConcernPublic,
    ConcernUpdate,
    DepartmentChanged,
    DepartmentCreate,
    DepartmentPublic,
    DepartmentUpdate,
    ReloadReport,
    TaxonomyChangePublic,
    TaxonomyChangesPublic,
    TaxonomyPublic,
)
from server.taxonomy._store import (
    EntryChange,
    apply_changes,
    import_document,
    read_entries,
    read_taxonomy,
    recent_changes,
)
from sync.couch import CouchError

__all__ = ["TaxonomyAdmin", "publish_taxonomy", "taxonomy_reference_doc"]

log = logging.getLogger("gridpatrol.taxonomy")


def taxonomy_reference_doc(taxonomy: Taxonomy) -> dict[str, Any]:
    """The document tablets pull from the reference database."""
    return {"_id": "taxonomy", "type": "taxonomy", "schema_version": 1, **taxonomy.raw}


async def publish_taxonomy(runtime: Runtime, taxonomy: Taxonomy) -> bool:
    """Write the taxonomy to the reference database; False (logged) when CouchDB refuses or is down."""
    from server.provision import publish_reference  # noqa: PLC0415  (provision imports this package)

    try:
        await publish_reference(runtime.couch, runtime.settings, [taxonomy_reference_doc(taxonomy)])
    except (CouchError, OSError) as exc:
        log.warning("taxonomy revision %d not published: %s", taxonomy.revision, exc)
        return False
    return True


def _invalid(exc: TaxonomyError) -> ApiError:
    zh = "；".join(f"{e.path}：{e.message_zh}" for e in exc.errors)
    en = "; ".join(f"{e.path}: {e.message_en}" for e in exc.errors)
    fields = [{"path": e.path, "reason_zh": e.message_zh, "reason_en": e.message_en} for e in exc.errors]
    return ApiError(
        400, "invalid_taxonomy", f"分类数据不合格：{zh}", f"invalid taxonomy: {en}", fields=fields
    )


def _not_found(kind_zh: str, kind_en: str, code: str) -> ApiError:
    return ApiError.not_found(f"{kind_zh} {code} 不存在", f"{kind_en} {code} not found")


class TaxonomyAdmin:
    def __init__(self, runtime: Runtime, session: AsyncSession, principal: Principal) -> None:
        if not principal.is_admin:
            raise ApiError.forbidden("只有管理员可以管理问题分类", "only admins may manage the taxonomy")
        self.runtime = runtime
        self.session = session
        self.principal = principal

    async def current(self) -> TaxonomyPublic:
        taxonomy = await read_taxonomy(self.session) or self.runtime.taxonomy
        return TaxonomyPublic(
            revision=taxonomy.revision,
            categories=[
                CategoryPublic.model_validate(c, from_attributes=True) for c in taxonomy.categories.values()
            ],
            concerns=[_concern(taxonomy, code) for code in taxonomy.concerns],
            departments=[
                DepartmentPublic.model_validate(d, from_attributes=True)
                for d in taxonomy.departments.values()
            ],
        )

    async def add_category(self, body: CategoryCreate) -> CategoryChanged:
        entries = await read_entries(self.session)
        code = body.code or next_category_code({c for k, c in entries if k == "category"})
        self._unused(entries, "category", code)
        data = {"code": code, "name_zh": body.name_zh, "name_en": body.name_en, "retired": False}
        taxonomy, published = await self._write(
            entries, [EntryChange("category", code, "added", None, data, None)]
        )
        return CategoryChanged(
            category=_category(taxonomy, code), revision=taxonomy.revision, published=published
        )

    async def update_category(self, code: str, body: CategoryUpdate) -> CategoryChanged:
        entries = await read_entries(self.session)
        change = self._edit(
            entries, "category", code, body.model_dump(exclude_unset=True), ("分类大类", "category")
        )
        taxonomy, published = await self._write(entries, [change] if change else [])
        return CategoryChanged(
            category=_category(taxonomy, code), revision=taxonomy.revision, published=published
        )

    async def add_department(self, body: DepartmentCreate) -> DepartmentChanged:
        entries = await read_entries(self.session)
        self._unused(entries, "department", body.code)
        data = {"code": body.code, "name_zh": body.name_zh, "name_en": body.name_en, "retired": False}
        taxonomy, published = await self._write(
            entries, [EntryChange("department", body.code, "added", None, data, None)]
        )
        return DepartmentChanged(
            department=_department(taxonomy, body.code), revision=taxonomy.revision, published=published
        )

    async def update_department(self, code: str, body: DepartmentUpdate) -> DepartmentChanged:
        entries = await read_entries(self.session)
        change = self._edit(
            entries, "department", code, body.model_dump(exclude_unset=True), ("部门", "department")
        )
        taxonomy, published = await self._write(entries, [change] if change else [])
        return DepartmentChanged(
            department=_department(taxonomy, code), revision=taxonomy.revision, published=published
        )

    async def add_concern(self, body: ConcernCreate) -> ConcernChanged:
        entries = await read_entries(self.session)
        code = body.code or next_concern_code({c for k, c in entries if k == "concern"}, body.category)
        self._unused(entries, "concern", code)
        data = {**body.model_dump(mode="json"), "code": code, "retired": False}
        taxonomy, published = await self._write(
            entries, [EntryChange("concern", code, "added", None, data, None)]
        )
        return ConcernChanged(
            concern=_concern(taxonomy, code), revision=taxonomy.revision, published=published
        )

    async def update_concern(self, code: str, body: ConcernUpdate) -> ConcernChanged:
        entries = await read_entries(self.session)
        fields = body.model_dump(mode="json", exclude_unset=True)
        change = self._edit(entries, "concern", code, fields, ("问题类型", "concern"))
        taxonomy, published = await self._write(entries, [change] if change else [])
        return ConcernChanged(
            concern=_concern(taxonomy, code), revision=taxonomy.revision, published=published
        )

    async def reload(self) -> ReloadReport:
        """Import the taxonomy file (GRIDPATROL_TAXONOMY_FILE) into SQL and make it current."""
        try:
            document = load_taxonomy(self.runtime.taxonomy_file).document()
            taxonomy, changes = await import_document(self.session, document, actor=self.principal.username)
            await self.session.commit()
        except TaxonomyError as exc:
            await self.session.rollback()
            raise _invalid(exc) from exc
        except IntegrityError as exc:
            await self.session.rollback()
            raise _conflict() from exc
        self.runtime.taxonomy = taxonomy
        published = await publish_taxonomy(self.runtime, taxonomy)
        zone = self.runtime.settings.timezone
        return ReloadReport(
            revision=taxonomy.revision,
            changes=[
                TaxonomyChangePublic(
                    revision=taxonomy.revision,
                    kind=c.kind,
                    code=c.code,
                    action=c.action,
                    actor=self.principal.username,
                    source="file",
                    at=to_local(utc_now(), zone),
                    before=c.before,
                    after=c.after,
                )
                for c in changes
            ],
            published=published,
        )

    async def changes(self, limit: int) -> TaxonomyChangesPublic:
        zone = self.runtime.settings.timezone
        rows = await recent_changes(self.session, limit)
        return TaxonomyChangesPublic(
            data=[
                TaxonomyChangePublic(
                    revision=change.revision,
                    kind=change.kind,
                    code=change.code,
                    action=change.action,
                    actor=revision.actor,
                    source=revision.source,
                    at=to_local(revision.at, zone),
                    before=change.before,
                    after=change.after,
                )
                for change, revision in rows
            ],
            count=len(rows),
        )

    @staticmethod
    def _unused(entries: dict[tuple[str, str], TaxonomyEntry], kind: str, code: str) -> None:
        row = entries.get((kind, code))
        if row is not None:
            state_zh, state_en = ("已停用", "retired") if row.data.get("retired") else ("在用", "in use")
            raise ApiError(
                409,
                "code_taken",
                f"代码 {code} 已被“{row.data.get('name_zh')}”使用（{state_zh}），代码不可复用",
                f"code {code} is taken by {row.data.get('name_en')!r} ({state_en}); codes are never reused",
            )

    @staticmethod
    def _edit(
        entries: dict[tuple[str, str], TaxonomyEntry],
        kind: str,
        code: str,
        fields: dict[str, Any],
        label: tuple[str, str],
    ) -> EntryChange | None:
        row = entries.get((kind, code))
        if row is None:
            raise _not_found(*label, code)
        before = dict(row.data)
        after = {**before, **fields}
        if after == before:
            return None
        action = "edited"
        if bool(before.get("retired")) != bool(after.get("retired")):
            action = "retired" if after.get("retired") else "reinstated"
        # Admin edits keep the file digest: reloading an unchanged file will not undo them.
        return EntryChange(kind, code, action, before, after, row.file_digest)

    async def _write(
        self, entries: dict[tuple[str, str], TaxonomyEntry], changes: list[EntryChange]
    ) -> tuple[Taxonomy, bool]:
        try:
            taxonomy = await apply_changes(
                self.session, entries, changes, actor=self.principal.username, source="api"
            )
            await self.session.commit()
        except TaxonomyError as exc:
            await self.session.rollback()
            raise _invalid(exc) from exc
        except IntegrityError as exc:
            await self.session.rollback()
            raise _conflict() from exc
        if not changes:
            return taxonomy, True
        self.runtime.taxonomy = taxonomy
        return taxonomy, await publish_taxonomy(self.runtime, taxonomy)


def _conflict() -> ApiError:
    return ApiError(
        409, "conflict", "分类刚被他人修改，请刷新后重试", "the taxonomy changed meanwhile; reload and retry"
    )


def _department(taxonomy: Taxonomy, code: str) -> DepartmentPublic:
    return DepartmentPublic.model_validate(taxonomy.departments[code], from_attributes=True)


def _category(taxonomy: Taxonomy, code: str) -> CategoryPublic:
    return CategoryPublic.model_validate(taxonomy.categories[code], from_attributes=True)


def _concern(taxonomy: Taxonomy, code: str) -> ConcernPublic:
    concern = taxonomy.concerns[code]
    return ConcernPublic(
        code=concern.code,
        category=concern.category,
        name_zh=concern.name_zh,
        name_en=concern.name_en,
        default_severity=concern.default_severity,
        deadline_working_days=concern.deadline_working_days,
        departments=list(concern.departments),
        radius_m=concern.radius_m,
        retired=concern.retired,
    )
