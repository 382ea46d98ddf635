"""The sync gateway's HTTP surface: CouchDB's replication API under ``/sync``.

One catch-all route receives every request; the CouchDB path is split from the raw path (Litestar
decodes ``%2F`` before routing) and dispatched here. Every error is CouchDB's ``{error, reason}``.
"""

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import msgspec
from litestar import Request, Response, route
from litestar.enums import HttpMethod
from litestar.exceptions import HTTPException
from litestar.response import Stream

from server.auth import AuthFailure
from server.gateway._errors import GatewayError
from server.gateway._http import authenticate, error_response, json_body, json_response
from server.gateway._paths import CouchPath, parse_couch_path
from server.gateway._scope import user_sources
from server.gateway._session import session_endpoint
from server.gateway._virtual import VirtualDatabase
from server.runtime import Runtime
from sync.couch import CouchStatusError, CouchTransportError, doc_path

__all__ = ["SYNC_PREFIX", "make_sync_handler"]

SYNC_PREFIX = "/sync"
_METHODS = [HttpMethod.GET, HttpMethod.HEAD, HttpMethod.POST, HttpMethod.PUT, HttpMethod.DELETE]
_PASSED_ATTACHMENT_HEADERS = (
    "content-type",
    "content-length",
    "etag",
    "accept-ranges",
    "content-range",
    "content-md5",
)


def _welcome(runtime: Runtime) -> dict[str, Any]:
    return {
        "couchdb": "Welcome",
        "version": "3.3.3",
        "vendor": {"name": "gridpatrol sync gateway"},
        "uuid": runtime.settings.gateway.server_uuid,
        "features": [],
    }


def make_sync_handler(max_body_bytes: int) -> Any:
    @route(
        [SYNC_PREFIX, f"{SYNC_PREFIX}/{{rest:path}}"],
        http_method=_METHODS,
        request_max_body_size=max_body_bytes,
        include_in_schema=False,
    )
    async def sync_endpoint(request: Request[Any, Any, Any]) -> Response[Any]:
        runtime: Runtime = request.app.state.runtime
        try:
            path = parse_couch_path(request.scope["raw_path"], SYNC_PREFIX)
            return await _dispatch(request, runtime, path)
        except (GatewayError, AuthFailure, CouchStatusError, CouchTransportError, HTTPException) as exc:
            return error_response(exc)

    return sync_endpoint


async def _dispatch(request: Request[Any, Any, Any], runtime: Runtime, path: CouchPath) -> Response[Any]:
    method = request.method
    if path.is_root:
        if method in {"GET", "HEAD"}:
            return json_response(_welcome(runtime))
        raise GatewayError(405, "method_not_allowed", "不支持的请求方法", "Only GET,HEAD allowed")
    if path.db == "_session":
        return await session_endpoint(request, runtime)
    principal = await authenticate(request, runtime)
    await runtime.ensure_grids()
    if path.db == "_all_dbs":
        return json_response([runtime.settings.gateway.virtual_db])
    if path.db == "_uuids":
        count = min(int(request.query_params.get("count", "1")), 1000)
        return json_response({"uuids": [uuid.uuid4().hex for _ in range(count)]})
    if path.db != runtime.settings.gateway.virtual_db:
        raise GatewayError(404, "not_found", "数据库不存在", "Database does not exist.")
    sources = user_sources(
        principal, runtime.settings.couch, runtime.grids.grid_codes, runtime.grids.parent_of
    )
    vdb = VirtualDatabase(path.db, runtime, principal, sources)
    params = dict(request.query_params)
    if path.doc_id is None and path.endpoint is None:
        return await _database(method, vdb)
    if path.endpoint is not None:
        return await _endpoint(request, vdb, path.endpoint, params)
    assert path.doc_id is not None
    if path.doc_id.startswith("_local/"):
        return await _local_doc(request, vdb, path.doc_id, params)
    if path.attachment is not None:
        return await _attachment(request, vdb, path.doc_id, path.attachment, params)
    return await _document(request, vdb, path.doc_id, params)


async def _database(method: str, vdb: VirtualDatabase) -> Response[Any]:
    if method in {"GET", "HEAD"}:
        return json_response(await vdb.info())
    if method == "PUT":
        raise GatewayError(
            412, "file_exists", "数据库已存在", "The database could not be created, the file already exists."
        )
    raise GatewayError.forbidden("同步数据库不能删除或直接写入", "this database cannot be deleted")


async def _endpoint(
    request: Request[Any, Any, Any], vdb: VirtualDatabase, endpoint: str, params: dict[str, str]
) -> Response[Any]:
    method = request.method
    if endpoint == "_changes" and method in {"GET", "POST"}:
        doc_ids = None
        if params.get("filter") == "_doc_ids":
            body = await json_body(request) if method == "POST" else {}
            raw_ids = body.get("doc_ids") if isinstance(body, dict) else None
            if raw_ids is None and "doc_ids" in params:
                raw_ids = msgspec.json.decode(params["doc_ids"])
            if not isinstance(raw_ids, list):
                raise GatewayError.bad_request("doc_ids 必须是数组", "doc_ids must be a JSON array")
            doc_ids = [str(i) for i in raw_ids]
        elif params.get("filter"):
            raise GatewayError.bad_request(
                "同步不支持该过滤器", f"filter {params['filter']!r} is not supported here"
            )
        return json_response(await vdb.changes(params, doc_ids))
    if endpoint == "_revs_diff" and method == "POST":
        body = await json_body(request)
        if not isinstance(body, dict):
            raise GatewayError.bad_request("请求体必须是对象", "Request body must be a JSON object")
        return json_response(await vdb.revs_diff(body))
    if endpoint == "_bulk_docs" and method == "POST":
        body = await json_body(request)
        if not isinstance(body, dict):
            raise GatewayError.bad_request("请求体必须是对象", "Request body must be a JSON object")
        return json_response(await vdb.bulk_docs(body, request.headers.get("x-device-id")), 201)
    if endpoint == "_bulk_get" and method == "POST":
        body = await json_body(request)
        docs = body.get("docs") if isinstance(body, dict) else None
        if not isinstance(docs, list):
            raise GatewayError.bad_request(
                "请求体必须包含 docs 数组", "Request body must contain a docs array"
            )
        return json_response(await vdb.bulk_get(params, docs))
    if endpoint == "_ensure_full_commit" and method == "POST":
        return json_response({"ok": True, "instance_start_time": "0"}, 201)
    raise GatewayError(404, "not_found", "不支持的接口", f"{endpoint} is not available on this database")


async def _local_doc(
    request: Request[Any, Any, Any], vdb: VirtualDatabase, doc_id: str, params: dict[str, str]
) -> Response[Any]:
    if request.method in {"GET", "HEAD"}:
        return json_response(await vdb.local.get(doc_id))
    if request.method == "PUT":
        body = await json_body(request)
        if not isinstance(body, dict):
            raise GatewayError.bad_request("请求体必须是对象", "Request body must be a JSON object")
        return json_response(await vdb.local.put(doc_id, body), 201)
    if request.method == "DELETE":
        return json_response(await vdb.local.delete(doc_id, params.get("rev")))
    raise GatewayError(405, "method_not_allowed", "不支持的请求方法", "Method not allowed")


async def _document(
    request: Request[Any, Any, Any], vdb: VirtualDatabase, doc_id: str, params: dict[str, str]
) -> Response[Any]:
    if request.method in {"GET", "HEAD"}:
        return json_response(await vdb.get_doc(doc_id, params))
    raise GatewayError(405, "method_not_allowed", "不支持的请求方法", "Method not allowed")


async def _attachment(
    request: Request[Any, Any, Any], vdb: VirtualDatabase, doc_id: str, name: str, params: dict[str, str]
) -> Response[Any]:
    if request.method not in {"GET", "HEAD"}:
        raise GatewayError(405, "method_not_allowed", "不支持的请求方法", "Method not allowed")
    source = await vdb.source_of(doc_id)
    headers = {
        k: v for k, v in request.headers.items() if k.lower() in {"range", "if-none-match", "if-range"}
    }
    stack = AsyncExitStack()
    response = await stack.enter_async_context(
        vdb.runtime.couch.stream(
            request.method, doc_path(source.db, doc_id, name), params=params, headers=headers
        )
    )
    passed = {k: v for k, v in response.headers.items() if k.lower() in _PASSED_ATTACHMENT_HEADERS}

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_raw():
                yield chunk
        finally:
            await stack.aclose()

    return Stream(content=body(), status_code=response.status_code, headers=passed)
