"""Admins reach every database of the backend through the gateway (inspect, repair, migrate).

Endpoints we implement go through the same handlers tablets use (with a direct view of one real
database); endpoints we do not implement are forwarded for admins only, with the backend's status
and body unchanged. Requests that kill pouchdb-server (a missing filter or view,
``filter=_selector``) are answered here and never sent. Every admin request is audited.
"""

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack
from typing import Any

from litestar import Request, Response
from litestar.response import Stream

from server.auth import Principal
from server.db.models import AdminAudit
from server.gateway._changes import DirectFilter
from server.gateway._errors import GatewayError
from server.runtime import Runtime
from sync.couch import CouchNotFound

__all__ = [
    "DESIGN_FUNCTIONS",
    "DirectFilter",
    "check_design_function",
    "direct_changes_filter",
    "forward",
    "record_admin_request",
]

# path segment after _design/<name>/  →  key of the design document that must hold the function
DESIGN_FUNCTIONS = {"_view": "views", "_show": "shows", "_list": "lists", "_update": "updates"}
_FORWARDED_REQUEST_HEADERS = ("content-type", "accept", "if-match", "if-none-match", "range", "destination")
_FORWARDED_RESPONSE_HEADERS = (
    "content-type",
    "etag",
    "location",
    "cache-control",
    "content-range",
    "accept-ranges",
)


def _not_found(reason: str) -> GatewayError:
    return GatewayError.from_couch(404, "not_found", reason)


async def check_design_function(runtime: Runtime, db: str, ddoc: str, kind: str, name: str) -> None:
    """Answer 404 as CouchDB would when a design function is missing (pouchdb-server would die)."""
    try:
        design = await runtime.couch.get_doc(db, f"_design/{ddoc}")
    except CouchNotFound as exc:
        raise _not_found("missing") from exc
    functions = design.get(DESIGN_FUNCTIONS.get(kind, kind)) or {}
    if name not in functions:
        raise _not_found("missing_named_view" if kind == "_view" else f"missing json key: {name}")


async def direct_changes_filter(
    runtime: Runtime, db: str, params: Mapping[str, str], body: Any
) -> DirectFilter | None:
    """The filter of an admin's ``_changes`` on a real database, checked before it reaches CouchDB."""
    name = params.get("filter")
    if not name:
        return None
    if name == "_doc_ids":
        ids = body.get("doc_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list):
            raise GatewayError.bad_request("doc_ids 必须是 JSON 数组", "doc_ids must be a JSON array")
        return DirectFilter({"filter": "_doc_ids"}, {"doc_ids": ids})
    if name == "_selector":
        if await runtime.backend() != "couchdb":
            raise GatewayError.bad_request(
                "当前文档库不支持 _selector 过滤", "filter=_selector is not supported by this document store"
            )
        selector = body.get("selector") if isinstance(body, dict) else None
        if not isinstance(selector, dict):
            raise GatewayError.bad_request("缺少 selector", "a selector object is required")
        return DirectFilter({"filter": "_selector"}, {"selector": selector})
    if name == "_view":
        view = params.get("view", "")
        ddoc, _, view_name = view.partition("/")
        if not ddoc or not view_name:
            raise GatewayError.bad_request("view 参数应为 设计文档/视图", "view must be ddoc/name")
        await check_design_function(runtime, db, ddoc, "_view", view_name)
        return DirectFilter({"filter": "_view", "view": view})
    ddoc, _, function = name.partition("/")
    if not ddoc or not function:
        raise GatewayError.bad_request("filter 参数应为 设计文档/过滤器", "filter must be ddoc/name")
    await check_design_function(runtime, db, ddoc, "filters", function)
    extra = {k: v for k, v in params.items() if k not in {"since", "limit", "feed", "heartbeat", "timeout"}}
    return DirectFilter({**extra, "filter": name})


def _backend_path(request: Request[Any, Any, Any], prefix: str) -> str:
    raw: bytes = request.scope["raw_path"]
    return raw.decode("latin-1")[len(prefix) :] or "/"


async def forward(request: Request[Any, Any, Any], runtime: Runtime, prefix: str) -> Response[Any]:
    """Send an endpoint we do not implement to CouchDB as is (admins only), answer as it answered."""
    headers = {k: v for k, v in request.headers.items() if k.lower() in _FORWARDED_REQUEST_HEADERS}
    content = await request.body() if request.method in {"POST", "PUT", "COPY"} else None
    query = request.scope.get("query_string", b"").decode("latin-1")
    path = _backend_path(request, prefix) + (f"?{query}" if query else "")
    stack = AsyncExitStack()
    response = await stack.enter_async_context(
        runtime.couch.stream(request.method, path, content=content, headers=headers, raise_for_status=False)
    )
    passed = {k.lower(): v for k, v in response.headers.items() if k.lower() in _FORWARDED_RESPONSE_HEADERS}

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_raw():
                yield chunk
        finally:
            await stack.aclose()

    return Stream(content=body(), status_code=response.status_code, headers=passed)


async def record_admin_request(
    runtime: Runtime, principal: Principal, request: Request[Any, Any, Any], status: int
) -> None:
    raw: bytes = request.scope["raw_path"]
    query: bytes = request.scope.get("query_string", b"")
    path = raw.decode("latin-1") + (f"?{query.decode('latin-1')}" if query else "")
    async with runtime.sessions() as session:
        session.add(
            AdminAudit(username=principal.username, method=request.method, path=path[:2000], status=status)
        )
        await session.commit()
