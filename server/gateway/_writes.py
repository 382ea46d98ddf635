"""Document writes on a virtual database. Every path (bulk, single PUT/POST/DELETE, attachment
PUT/DELETE) becomes a batch for ``PushService``, so the push rules exist once."""

import base64
import uuid
from collections.abc import Mapping
from typing import Any

from server.gateway._errors import GatewayError
from server.gateway._push import PushService
from server.gateway._virtual import VirtualDatabase
from sync.couch import CouchNotFound

__all__ = ["DocumentWriter"]

_STATUS_BY_ERROR = {
    "forbidden": 403,
    "unauthorized": 401,
    "conflict": 409,
    "not_found": 404,
    "bad_request": 400,
}


class DocumentWriter:
    def __init__(self, vdb: VirtualDatabase, device_hint: str | None) -> None:
        self.vdb = vdb
        self.device_hint = device_hint
        self._push = PushService(vdb.runtime, vdb.principal, vdb.sources, vdb.visibility)

    async def bulk_docs(self, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        docs = body.get("docs")
        if not isinstance(docs, list) or not all(isinstance(d, dict) for d in docs):
            raise GatewayError.bad_request(
                "请求体必须包含 docs 数组", "Request body must contain a docs array"
            )
        new_edits = body.get("new_edits", True) is not False
        for doc in docs:
            if "_id" not in doc:
                if not new_edits:
                    raise GatewayError.bad_request("文档缺少 _id", "Document is missing _id")
                doc["_id"] = uuid.uuid4().hex
            elif not isinstance(doc["_id"], str) or not doc["_id"] or doc["_id"].startswith("_local/"):
                raise GatewayError.bad_request("文档 _id 无效", f"invalid _id {doc['_id']!r}")
        return await self._push.write(docs, new_edits=new_edits, device_hint=self.device_hint)

    async def _single(self, doc: dict[str, Any], *, new_edits: bool = True) -> dict[str, Any]:
        answers = await self._push.write([doc], new_edits=new_edits, device_hint=self.device_hint)
        # With new_edits=false CouchDB lists failures only: no answer means stored.
        answer = answers[0] if answers else {"id": doc["_id"], "rev": doc.get("_rev")}
        if "error" in answer:
            status = _STATUS_BY_ERROR.get(str(answer["error"]), 500)
            raise GatewayError.from_couch(status, str(answer["error"]), str(answer.get("reason", "")))
        return {"ok": True, "id": answer.get("id", doc["_id"]), "rev": answer.get("rev", doc.get("_rev"))}

    async def put(self, doc_id: str, body: Mapping[str, Any], params: Mapping[str, str]) -> dict[str, Any]:
        doc = dict(body)
        if "_id" in doc and doc["_id"] != doc_id:
            raise GatewayError.bad_request(
                "路径中的 id 与文档 _id 不一致", "document id does not match the URL"
            )
        doc["_id"] = doc_id
        if "rev" in params and "_rev" not in doc:
            doc["_rev"] = params["rev"]
        return await self._single(doc, new_edits=params.get("new_edits", "true") != "false")

    async def post(self, body: Mapping[str, Any]) -> dict[str, Any]:
        doc = dict(body)
        doc.setdefault("_id", uuid.uuid4().hex)
        return await self._single(doc)

    async def delete(self, doc_id: str, rev: str | None) -> dict[str, Any]:
        if not rev:
            raise GatewayError(409, "conflict", "删除需要当前版本号 rev", "Document update conflict.")
        return await self._single({"_id": doc_id, "_rev": rev, "_deleted": True})

    async def _stored(self, doc_id: str, rev: str | None) -> dict[str, Any]:
        source = await self.vdb.source_of(doc_id)
        try:
            stored: dict[str, Any] = await self.vdb.runtime.couch.get_doc(source.db, doc_id)
        except CouchNotFound as exc:
            raise GatewayError.not_found() from exc
        if rev is None or stored.get("_rev") != rev:
            raise GatewayError(409, "conflict", "文档已被更新，请先同步", "Document update conflict.")
        return stored

    async def put_attachment(
        self, doc_id: str, name: str, rev: str | None, content: bytes, content_type: str
    ) -> dict[str, Any]:
        """Add or replace one attachment: a new revision of the stored document, checked like a push."""
        doc = await self._stored(doc_id, rev)
        attachments = dict(doc.get("_attachments") or {})
        attachments[name] = {"content_type": content_type, "data": base64.b64encode(content).decode()}
        doc["_attachments"] = attachments
        return await self._single(doc)

    async def delete_attachment(self, doc_id: str, name: str, rev: str | None) -> dict[str, Any]:
        doc = await self._stored(doc_id, rev)
        attachments = dict(doc.get("_attachments") or {})
        if name not in attachments:
            raise GatewayError.not_found("附件不存在", "Document is missing attachment")
        del attachments[name]
        doc["_attachments"] = attachments
        return await self._single(doc)
