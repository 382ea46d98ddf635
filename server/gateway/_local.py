"""``_local`` documents (replication checkpoints) of the virtual database, kept per user in SQL.

They never reach CouchDB: the virtual database does not exist there, and a checkpoint belongs to
one user's view of it.
"""

from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from server.db import SessionMaker
from server.db.models import LocalDoc, utc_now
from server.gateway._errors import GatewayError
from sync.couch import CouchClient, doc_path

__all__ = ["CouchLocalStore", "LocalDocStore", "LocalStore"]


def _rev(generation: int) -> str:
    return f"0-{generation}"


class LocalDocStore:
    def __init__(self, sessions: SessionMaker, owner: str, db: str) -> None:
        self._sessions = sessions
        self._owner = owner
        self._db = db

    async def _row(self, session: Any, doc_id: str) -> LocalDoc | None:
        result = await session.exec(
            select(LocalDoc).where(
                LocalDoc.owner == self._owner, LocalDoc.db == self._db, LocalDoc.doc_id == doc_id
            )
        )
        row: LocalDoc | None = result.first()
        return row

    async def get(self, doc_id: str) -> dict[str, Any]:
        async with self._sessions() as session:
            row = await self._row(session, doc_id)
        if row is None or row.generation == 0:
            raise GatewayError.not_found()
        return {**row.body, "_id": doc_id, "_rev": _rev(row.generation)}

    async def put(self, doc_id: str, body: dict[str, Any]) -> dict[str, Any]:
        given = body.get("_rev")
        content = {k: v for k, v in body.items() if k not in {"_id", "_rev"}}
        async with self._sessions() as session:
            row = await self._row(session, doc_id)
            current = _rev(row.generation) if row is not None and row.generation > 0 else None
            if given is not None and given != current:
                raise GatewayError(409, "conflict", "文档已被更新", "Document update conflict.")
            if row is None:
                row = LocalDoc(owner=self._owner, db=self._db, doc_id=doc_id, generation=1, body=content)
            else:
                # A PUT without _rev over an existing checkpoint is what CouchDB accepts for _local docs.
                row.generation += 1
                row.body = content
                row.updated_at = utc_now()
            session.add(row)
            try:
                await session.commit()
            except IntegrityError as exc:
                raise GatewayError(409, "conflict", "文档已被更新", "Document update conflict.") from exc
            return {"ok": True, "id": doc_id, "rev": _rev(row.generation)}

    async def delete(self, doc_id: str, rev: str | None) -> dict[str, Any]:
        async with self._sessions() as session:
            row = await self._row(session, doc_id)
            if row is None or row.generation == 0:
                raise GatewayError.not_found()
            if rev is not None and rev != _rev(row.generation):
                raise GatewayError(409, "conflict", "文档已被更新", "Document update conflict.")
            await session.delete(row)
            await session.commit()
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
