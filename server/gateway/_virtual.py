"""One user's virtual database: the reference database plus the grid databases of their scope.

Reads fan out to the user's sources only, so a pull costs what the user's scope holds, never what
the whole store holds. Sequence tokens are the gateway's own (see ``_seq``).
"""

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from server.auth import Principal
from server.gateway._errors import GatewayError
from server.gateway._local import LocalDocStore
from server.gateway._push import PushService
from server.gateway._scope import Source
from server.gateway._seq import Positions, decode_seq, encode_seq
from server.runtime import Runtime
from sync.couch import CouchNotFound

__all__ = ["VirtualDatabase"]

_UNBOUNDED_PAGE = 1000
_COUCH_VERSION = "3.3.3"


def _is_design(doc_id: str) -> bool:
    return doc_id.startswith("_design/")


def _flag(params: Mapping[str, str], name: str) -> bool:
    return params.get(name, "false").lower() == "true"


class VirtualDatabase:
    def __init__(self, name: str, runtime: Runtime, principal: Principal, sources: Sequence[Source]) -> None:
        self.name = name
        self.runtime = runtime
        self.principal = principal
        self.sources = list(sources)
        self.local = LocalDocStore(runtime.sessions, principal.username, name)
        self._couch = runtime.couch

    # -- database ---------------------------------------------------------------------------------

    async def info(self) -> dict[str, Any]:
        infos = await asyncio.gather(*(self._couch.db_info(s.db) for s in self.sources))
        positions: Positions = {
            s.key: info.get("update_seq", 0) for s, info in zip(self.sources, infos, strict=True)
        }
        return {
            "db_name": self.name,
            "update_seq": encode_seq(positions),
            "doc_count": sum(int(i.get("doc_count", 0)) for i in infos),
            "doc_del_count": sum(int(i.get("doc_del_count", 0)) for i in infos),
            "purge_seq": 0,
            "compact_running": False,
            "instance_start_time": "0",
            "disk_format_version": 8,
            "sizes": {"file": 0, "external": 0, "active": 0},
            "props": {},
            "couchdb_version": _COUCH_VERSION,
        }

    # -- changes ----------------------------------------------------------------------------------

    async def _now_positions(self) -> Positions:
        infos = await asyncio.gather(*(self._couch.db_info(s.db) for s in self.sources))
        return {s.key: info.get("update_seq", 0) for s, info in zip(self.sources, infos, strict=True)}

    async def changes(
        self, params: Mapping[str, str], doc_ids: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """A normal ``_changes`` page over every source, in source order.

        Never returns an empty page while any source still has rows: PouchDB takes an empty page as
        the end of the feed. Rows we hide (design documents) still advance the positions.
        """
        since = params.get("since")
        positions = await self._now_positions() if since == "now" else decode_seq(since)
        limit = int(params["limit"]) if params.get("limit") else None
        if limit is not None and limit <= 0:
            limit = 1
        passthrough = {
            key: params[key]
            for key in ("style", "include_docs", "conflicts", "attachments", "att_encoding_info")
            if key in params
        }
        wanted = set(doc_ids) if doc_ids is not None else None
        results: list[dict[str, Any]] = []
        pending_total = 0
        for source in self.sources:
            drained = False
            while not drained and (limit is None or len(results) < limit):
                page_size = _UNBOUNDED_PAGE if limit is None else limit - len(results)
                query: dict[str, str | int | bool | None] = dict(passthrough)
                query["since"] = positions.get(source.key, 0)
                query["limit"] = page_size
                page = await self._couch.changes(source.db, query)
                rows = page.get("results", [])
                for row in rows:
                    positions[source.key] = row["seq"]
                    if self._hidden(row["id"]) or (wanted is not None and row["id"] not in wanted):
                        continue
                    results.append({**row, "seq": encode_seq(positions)})
                if len(rows) < page_size:
                    positions[source.key] = page.get("last_seq", positions.get(source.key, 0))
                    drained = True
                    pending_total += 0
                else:
                    pending_total += int(page.get("pending", 0) or 0)
            if limit is not None and len(results) >= limit:
                break
        return {"results": results, "last_seq": encode_seq(positions), "pending": pending_total}

    def _hidden(self, doc_id: str) -> bool:
        return _is_design(doc_id) and not self.principal.is_admin

    # -- replication ------------------------------------------------------------------------------

    async def revs_diff(self, body: Mapping[str, Sequence[str]]) -> dict[str, Any]:
        """A revision is missing when no source of the user has it."""
        diffs = await asyncio.gather(*(self._couch.revs_diff(s.db, body) for s in self.sources))
        result: dict[str, Any] = {}
        for doc_id, revs in body.items():
            missing = set(revs)
            ancestors: set[str] = set()
            for diff in diffs:
                entry = diff.get(doc_id)
                missing &= set(entry.get("missing", [])) if entry else set()
                if entry:
                    ancestors.update(entry.get("possible_ancestors", []))
            if missing:
                ordered = [r for r in revs if r in missing]
                result[doc_id] = {"missing": ordered}
                if ancestors:
                    result[doc_id]["possible_ancestors"] = sorted(ancestors)
        return result

    async def bulk_get(self, params: Mapping[str, str], docs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Fan out to every source; each requested revision is answered by the source that has it."""
        visible = [d for d in docs if not self._hidden(str(d.get("id", "")))]
        answers = await asyncio.gather(
            *(
                self._couch.bulk_get(
                    s.db,
                    visible,
                    revs=_flag(params, "revs"),
                    latest=_flag(params, "latest"),
                    attachments=_flag(params, "attachments"),
                )
                for s in self.sources
            )
        )
        by_position = iter(range(len(visible)))
        results = []
        for request in docs:
            doc_id = str(request.get("id", ""))
            if self._hidden(doc_id):
                results.append(_bulk_get_missing(request))
                continue
            index = next(by_position)
            chosen: dict[str, Any] | None = None
            for answer in answers:
                entry = answer[index] if index < len(answer) else None
                if (
                    entry is not None
                    and entry.get("id") == doc_id
                    and any("ok" in d for d in entry.get("docs", []))
                ):
                    chosen = entry
                    break
            results.append(chosen or _bulk_get_missing(request))
        return {"results": results}

    async def bulk_docs(self, body: Mapping[str, Any], device_hint: str | None) -> list[dict[str, Any]]:
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
        push = PushService(self.runtime, self.principal, self.sources)
        return await push.write(docs, new_edits=new_edits, device_hint=device_hint)

    # -- documents --------------------------------------------------------------------------------

    async def home_of(self, doc_ids: Sequence[str]) -> dict[str, tuple[Source, dict[str, Any]]]:
        """For each existing id: the source holding it and its ``_all_docs`` row (deleted ones too)."""
        if not doc_ids:
            return {}
        answers = await asyncio.gather(*(self._couch.all_docs(s.db, keys=doc_ids) for s in self.sources))
        homes: dict[str, tuple[Source, dict[str, Any]]] = {}
        for source, answer in zip(self.sources, answers, strict=True):
            for row in answer.get("rows", []):
                if "error" not in row and row.get("id") not in homes:
                    homes[row["id"]] = (source, row)
        return homes

    async def get_doc(self, doc_id: str, params: Mapping[str, str]) -> Any:
        if self._hidden(doc_id):
            raise GatewayError.not_found()
        homes = await self.home_of([doc_id])
        if doc_id not in homes:
            raise GatewayError.not_found()
        source, _ = homes[doc_id]
        try:
            return await self._couch.get_doc(source.db, doc_id, params=dict(params))
        except CouchNotFound as exc:
            raise GatewayError(404, "not_found", "文档不存在或已删除", exc.reason or "missing") from exc

    async def source_of(self, doc_id: str) -> Source:
        if self._hidden(doc_id):
            raise GatewayError.not_found()
        homes = await self.home_of([doc_id])
        if doc_id not in homes:
            raise GatewayError.not_found()
        return homes[doc_id][0]


def _bulk_get_missing(request: Mapping[str, Any]) -> dict[str, Any]:
    doc_id = request.get("id")
    return {
        "id": doc_id,
        "docs": [
            {"error": {"id": doc_id, "rev": request.get("rev"), "error": "not_found", "reason": "missing"}}
        ],
    }
