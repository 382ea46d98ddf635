"""``_local`` documents (replication checkpoints) of the virtual database, kept per user in SQL.

They never reach CouchDB: the virtual database does not exist there, and a checkpoint belongs to
one user's view of it.
"""

from typing import Any, Protocol

from sqlalchemy import ColumnElement, Table, and_, delete, func, insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.db import SessionMaker
from server.db.models import LocalDoc, utc_now
from server.gateway._errors import GatewayError
from sync.couch import CouchClient, doc_path

__all__ = [
    "LOCAL_DOCS_PER_DB",
    "LOCAL_DOC_MAX_BYTES",
    "CouchLocalStore",
    "LocalDocStore",
    "LocalStore",
    "local_too_large",
]


_LOCAL: Table = LocalDoc.__table__  # type: ignore[attr-defined]
LOCAL_DOC_MAX_BYTES = 64 * 1024
"""Largest ``_local`` body accepted. PouchDB's checkpoints are 1-2 KB (their history is capped);
anything near this is not a checkpoint, and without a cap any user could fill the SQL database."""
LOCAL_DOCS_PER_DB = 1000
"""``_local`` documents one user may keep in one database: PouchDB writes one per replication id
(a tablet has a few), so a thousand is far past any real use."""
_MAX_ID_CHARS = 400
"""``local_docs.doc_id`` is a VARCHAR(400) (PostgreSQL refuses longer values)."""
_MAX_GENERATION_DIGITS = 18
"""A revision ``0-N`` with more digits matches no row (and would not fit an SQL integer)."""


def _conflict() -> GatewayError:
    return GatewayError(409, "conflict", "文档已被更新", "Document update conflict.")


def _rev(generation: int) -> str:
    return f"0-{generation}"


def _generation(rev: object) -> int:
    """The generation a ``0-N`` revision names; -1 (matches no row) for anything else."""
    prefix, _, number = str(rev).partition("-")
    valid = prefix == "0" and number.isascii() and number.isdigit() and len(number) <= _MAX_GENERATION_DIGITS
    return int(number) if valid else -1


def local_too_large() -> GatewayError:
    """CouchDB's 413 for a ``_local`` body over ``LOCAL_DOC_MAX_BYTES``."""
    return GatewayError(
        413,
        "too_large",
        f"_local 文档不能超过 {LOCAL_DOC_MAX_BYTES // 1024} KB",
        f"a _local document may not exceed {LOCAL_DOC_MAX_BYTES // 1024} KB",
    )


class LocalDocStore:
    """Checkpoints as rows of ``local_docs``, a statement or two per request on SQLAlchemy Core:
    PouchDB reads and writes one after every batch it replicates, on the replication's critical
    path, so the ORM's unit of work is not worth its cost here."""

    def __init__(self, sessions: SessionMaker, owner: str, db: str) -> None:
        self._sessions = sessions
        self._owner = owner
        self._db = db

    def _this(self, doc_id: str) -> ColumnElement[bool]:
        return and_(_LOCAL.c.owner == self._owner, _LOCAL.c.db == self._db, _LOCAL.c.doc_id == doc_id)

    async def _current(self, session: AsyncSession, doc_id: str) -> tuple[int, dict[str, Any]] | None:
        query = select(_LOCAL.c.generation, _LOCAL.c.body).where(self._this(doc_id))
        found = (await session.exec(query)).first()
        return None if found is None or found[0] == 0 else (int(found[0]), found[1])

    async def get(self, doc_id: str) -> dict[str, Any]:
        async with self._sessions() as session:
            current = await self._current(session, doc_id)
        if current is None:
            raise GatewayError.not_found()
        return {**current[1], "_id": doc_id, "_rev": _rev(current[0])}

    async def _count(self, session: AsyncSession) -> int:
        query = select(func.count()).where(_LOCAL.c.owner == self._owner, _LOCAL.c.db == self._db)
        return int((await session.exec(query)).one())

    async def put(self, doc_id: str, body: dict[str, Any]) -> dict[str, Any]:
        if len(doc_id) > _MAX_ID_CHARS:
            raise GatewayError.bad_request(
                f"_local 文档 id 不能超过 {_MAX_ID_CHARS} 个字符",
                f"a _local document id may not exceed {_MAX_ID_CHARS} characters",
            )
        given = body.get("_rev")
        content = {k: v for k, v in body.items() if k not in {"_id", "_rev"}}
        where = self._this(doc_id)
        if given is not None:
            # Compare-and-set on the generation the client read. A PUT without _rev over an
            # existing checkpoint is what CouchDB accepts for _local docs.
            where = and_(where, _LOCAL.c.generation == _generation(given))
        async with self._sessions() as session, session.begin():
            moved = await session.exec(
                update(_LOCAL)
                .where(where)
                .values(generation=_LOCAL.c.generation + 1, body=content, updated_at=utc_now())
                .returning(_LOCAL.c.generation)
            )
            generation = moved.scalar()
            if generation is None:
                if given is not None or await self._current(session, doc_id) is not None:
                    raise _conflict()
                # Only a new document is counted: updating a checkpoint, PouchDB's hot path,
                # stays one statement. Concurrent first writes may pass the cap by a few.
                if await self._count(session) >= LOCAL_DOCS_PER_DB:
                    raise GatewayError.forbidden(
                        f"每个用户在每个数据库最多保存 {LOCAL_DOCS_PER_DB} 个 _local 文档，请删除不用的",
                        f"at most {LOCAL_DOCS_PER_DB} _local documents per user and database; "
                        "delete unused ones first",
                    )
                generation = 1
                try:
                    async with session.begin_nested():
                        await session.exec(
                            insert(_LOCAL).values(
                                owner=self._owner,
                                db=self._db,
                                doc_id=doc_id,
                                generation=generation,
                                body=content,
                                updated_at=utc_now(),
                            )
                        )
                except IntegrityError as exc:
                    raise _conflict() from exc
        return {"ok": True, "id": doc_id, "rev": _rev(int(generation))}

    async def delete(self, doc_id: str, rev: str | None) -> dict[str, Any]:
        where = self._this(doc_id)
        if rev is not None:
            where = and_(where, _LOCAL.c.generation == _generation(rev))
        async with self._sessions() as session, session.begin():
            if await self._current(session, doc_id) is None:
                raise GatewayError.not_found()
            removed = await session.exec(delete(_LOCAL).where(where).returning(_LOCAL.c.generation))
            if removed.first() is None:
                raise _conflict()
        return {"ok": True, "id": doc_id, "rev": "0-0"}


class LocalStore(Protocol):
    async def get(self, doc_id: str) -> dict[str, Any]: ...

    async def put(self, doc_id: str, body: dict[str, Any]) -> dict[str, Any]: ...

    async def delete(self, doc_id: str, rev: str | None) -> dict[str, Any]: ...


class CouchLocalStore:
    """``_local`` documents of a real database an admin opened directly: CouchDB keeps them."""

    def __init__(self, couch: CouchClient, db: str) -> None:
        self._couch = couch
        self._db = db

    async def get(self, doc_id: str) -> dict[str, Any]:
        doc: dict[str, Any] = await self._couch.get_doc(self._db, doc_id)
        return doc

    async def put(self, doc_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._couch.put_doc(self._db, {**body, "_id": doc_id})

    async def delete(self, doc_id: str, rev: str | None) -> dict[str, Any]:
        result: dict[str, Any] = await self._couch.request(
            "DELETE", doc_path(self._db, doc_id), params={"rev": rev} if rev else None
        )
        return result
