"""A single document or attachment read by name, with the revision checked that it hands over.

A user limited to some micro-grids sees a grid database's documents through ``Visibility``. A
document's winning revision is not the only one a client may ask for: ``rev``, ``open_revs`` and
``latest`` hand over older or losing revisions, whose place (and so whose visibility) may differ,
and a deleted document's earlier revisions keep their whole body. So every body a read returns is
checked, as ``_bulk_get`` checks it, and a hidden revision answers exactly as a missing one.
Tombstones stay visible, so deletions still reach every tablet of the grid.
"""

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from server.gateway._errors import GatewayError
from server.gateway._params import open_revs_param
from server.gateway._scope import Source
from sync.couch import CouchNotFound

if TYPE_CHECKING:
    from server.gateway._virtual import VirtualDatabase

__all__ = ["attachment_query", "read_document"]


def _missing(reason: str = "missing") -> GatewayError:
    """CouchDB's 404 for a revision it does not have (a hidden one looks the same)."""
    return GatewayError(404, "not_found", "文档不存在或已删除", reason)


def _shown(answer: Any, visible: Callable[[Mapping[str, Any]], bool]) -> Any:
    """``answer`` of a document GET with each revision the user may not see made missing."""
    if isinstance(answer, list):  # open_revs: [{"ok": doc} | {"missing": rev}]
        return [
            {"missing": entry["ok"].get("_rev")}
            if isinstance(entry, dict) and isinstance(entry.get("ok"), dict) and not visible(entry["ok"])
            else entry
            for entry in answer
        ]
    if isinstance(answer, dict) and not visible(answer):
        raise _missing()
    return answer


async def read_document(view: "VirtualDatabase", doc_id: str, params: Mapping[str, str]) -> Any:
    """``GET /{db}/{doc_id}`` with whatever revision options the client sent."""
    source = await view.source_of(doc_id)
    open_revs_param(params)
    try:
        answer = await view.couch.get_doc(source.db, doc_id, params=dict(params))
    except CouchNotFound as exc:
        raise _missing(exc.reason or "missing") from exc
    if not view.visibility.filters(source.grid):
        return answer
    return _shown(answer, lambda doc: view.visible(source, doc))


async def attachment_query(
    view: "VirtualDatabase", doc_id: str, params: Mapping[str, str]
) -> tuple[Source, dict[str, str]]:
    """Where to read an attachment, and the query to send: an admin's own as is; a tablet's only
    ``rev``, the one option of CouchDB's attachment GET (pouchdb-server would also follow others,
    such as ``latest``, to a revision not checked here), after checking that revision."""
    source = await view.source_of(doc_id)
    if view.direct:
        return source, dict(params)
    rev = params.get("rev")
    if rev is None:
        return source, {}  # the winning revision, which source_of checked
    if view.visibility.filters(source.grid):
        try:
            body = await view.couch.get_doc(source.db, doc_id, params={"rev": rev})
        except CouchNotFound as exc:
            raise _missing(exc.reason or "missing") from exc
        if not view.visible(source, body):
            raise _missing()
    return source, {"rev": rev}
