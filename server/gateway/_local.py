"""``_local`` documents (replication checkpoints) of the virtual database, kept per user in SQL.

They never reach CouchDB: the virtual database does not exist there, and a checkpoint belongs to
one user's view of it.
"""

from typing import Any, Protocol

from sqlalchemy import ColumnElement, Table, and_, delete, insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.db import SessionMaker
from server.db.models import LocalDoc, utc_now
from server.gateway._errors import GatewayError
from sync.couch import CouchClient, doc_path

__all__ = ["CouchLocalStore", "LocalDocStore", "LocalStore"]


_LOCAL: Table = LocalDoc.__table__  # type: ignore[attr-defined]


def _conflict() -> GatewayError:
    return GatewayError(409, "conflict", "文档已被更新", "Document update conflict.")


def _rev(generation: int) -> str:
    return f"0-{generation}"


def _generation(rev: object) -> int:
    """The generation a ``0-N`` revision names; -1 (matches no row) for anything else."""
    prefix, _, number = str(rev).partition("-")
    return int(number) if prefix == "0" and number.isdigit() else -1


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

    async def put(self, doc_id: str, body: dict[str, Any]) -> dict[str, Any]:
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
