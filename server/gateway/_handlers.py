"""The sync gateway's HTTP surface: CouchDB's replication API under ``/sync``.

One catch-all route receives every request; the CouchDB path is split from the raw path (Litestar
decodes ``%2F`` before routing) and dispatched here. Every error is CouchDB's ``{error, reason}``.
"""

import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import quote

import msgspec
from litestar import Request, Response, route
from litestar.enums import HttpMethod
from litestar.exceptions import HTTPException
from litestar.response import Stream

from server.auth import AuthFailure, Principal
from server.db.models import Role
from server.gateway._admin import (
    DESIGN_FUNCTIONS,
    check_design_function,
    direct_changes_filter,
    forward,
    record_admin_request,
)
from server.gateway._compression import gzip_json
from server.gateway._errors import GatewayError
from server.gateway._http import authenticate, error_body_of, error_response, json_body, json_response
from server.gateway._local import LOCAL_DOC_MAX_BYTES, local_too_large
from server.gateway._params import (
    MAX_UUIDS,
    all_docs_keys,
    bulk_get_requests,
    changes_doc_ids,
    heartbeat_seconds,
    int_param,
    revs_diff_body,
    timeout_seconds,
)
from server.gateway._paths import CouchPath, parse_couch_path
from server.gateway._ranges import RangeNotSatisfiable, parse_range, slice_stream
from server.gateway._revisions import attachment_query, read_document
from server.gateway._session import session_endpoint
from server.gateway._virtual import COUCH_VERSION, VirtualDatabase
from server.gateway._writes import DocumentWriter
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
    "content-encoding",
)
_LONGPOLL_MAX_S = 60.0
_PRINCIPAL_KEY = "gridpatrol.principal"
# Database-level endpoints the gateway implements itself; others are forwarded for admins only.
_IMPLEMENTED = frozenset(
    {"_changes", "_revs_diff", "_bulk_docs", "_bulk_get", "_all_docs", "_ensure_full_commit"}
)
_encoder = msgspec.json.Encoder()


def _welcome(runtime: Runtime) -> dict[str, Any]:
    return {
        "couchdb": "Welcome",
        "version": COUCH_VERSION,
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
        middleware=[gzip_json],
    )
    async def sync_endpoint(request: Request[Any, Any, Any]) -> Response[Any]:
        runtime: Runtime = request.app.state.runtime
        try:
            path = parse_couch_path(request.scope["raw_path"], SYNC_PREFIX)
            response = await _dispatch(request, runtime, path)
        except (GatewayError, AuthFailure, CouchStatusError, CouchTransportError, HTTPException) as exc:
            response = error_response(exc)
        principal: Principal | None = request.scope.get(_PRINCIPAL_KEY)  # type: ignore[assignment]
        if principal is not None and principal.is_admin:
            await record_admin_request(runtime, principal, request, response.status_code or 200)
        return response

    return sync_endpoint


def _method_not_allowed(allowed: str) -> GatewayError:
    return GatewayError(405, "method_not_allowed", f"只允许 {allowed}", f"Only {allowed} allowed")


async def _dispatch(request: Request[Any, Any, Any], runtime: Runtime, path: CouchPath) -> Response[Any]:
    method = request.method
    if path.is_root:
        if method in {"GET", "HEAD"}:
            return json_response(_welcome(runtime))
        raise _method_not_allowed("GET,HEAD")
    if path.db == "_session":
        return await session_endpoint(request, runtime)
    principal = await authenticate(request, runtime)
    request.scope[_PRINCIPAL_KEY] = principal  # type: ignore[literal-required]
    if principal.role is Role.DEPARTMENT:
        raise GatewayError.forbidden(
            "部门账号通过案件接口签收和反馈，不能同步巡查数据",
            "department accounts acknowledge and report through the case API; they cannot sync",
        )
    await runtime.refresh()
    assert path.db is not None
    if path.db.startswith("_"):
        return await _server_endpoint(request, runtime, principal, path.db)
    if path.db == runtime.settings.gateway.virtual_db:
        vdb = VirtualDatabase.user_view(runtime, principal)
    elif principal.is_admin:
        vdb = VirtualDatabase.direct_view(path.db, runtime, principal)
    else:
        raise GatewayError.forbidden(
            "只有管理员可以直接访问文档库", "only admins may open the store's databases directly"
        )
    params = dict(request.query_params)
    writer = DocumentWriter(vdb, request.headers.get("x-device-id"))
    if path.doc_id is None and path.endpoint is None:
        return await _database(request, vdb, writer)
    if path.endpoint is not None:
        if path.endpoint in _IMPLEMENTED or not vdb.direct:
            return await _endpoint(request, vdb, writer, path.endpoint, params)
        return await forward(request, runtime, SYNC_PREFIX)
    assert path.doc_id is not None
    if path.doc_id.startswith("_local/"):
        return await _local_doc(request, vdb, path.doc_id, params)
    if path.attachment is not None:
        function = path.attachment.split("/", 1)
        if vdb.direct and path.doc_id.startswith("_design/") and function[0] in DESIGN_FUNCTIONS:
            if len(function) > 1:
                name = function[1].split("/", 1)[0]
                await check_design_function(
                    runtime, path.db, path.doc_id.removeprefix("_design/"), function[0], name
                )
            return await forward(request, runtime, SYNC_PREFIX)
        return await _attachment(request, vdb, writer, path.doc_id, path.attachment, params)
    return await _document(request, vdb, writer, path.doc_id, params)


async def _server_endpoint(
    request: Request[Any, Any, Any], runtime: Runtime, principal: Principal, name: str
) -> Response[Any]:
    if name == "_uuids":
        asked = int_param(request.query_params, "count")
        count = 1 if asked is None else min(asked, MAX_UUIDS)
        return json_response({"uuids": [uuid.uuid4().hex for _ in range(count)]})
    if name == "_up":
        return json_response({"status": "ok"})
    if not principal.is_admin:
        if name == "_all_dbs":
            return json_response([runtime.settings.gateway.virtual_db])
        raise GatewayError.forbidden("只有管理员可以使用该接口", f"only admins may use {name}")
    if name == "_all_dbs":
        names = await runtime.couch.request("GET", "/_all_dbs")
        return json_response(sorted({*names, runtime.settings.gateway.virtual_db}))
    return await forward(request, runtime, SYNC_PREFIX)


async def _object_body(
    request: Request[Any, Any, Any],
    max_bytes: int | None = None,
    too_large: Callable[[], GatewayError] | None = None,
) -> dict[str, Any]:
    body = await json_body(request, max_bytes, too_large)
    if not isinstance(body, dict):
        raise GatewayError.bad_request("请求体必须是 JSON 对象", "Request body must be a JSON object")
    return body


async def _database(
    request: Request[Any, Any, Any], vdb: VirtualDatabase, writer: DocumentWriter
) -> Response[Any]:
    method = request.method
    if method in {"GET", "HEAD"}:
        return json_response(await vdb.info())
    if method == "POST":
        return json_response(await writer.post(await _object_body(request)), 201)
    if vdb.direct and method == "PUT":
        created = await vdb.couch.request(
            "PUT", f"/{quote(vdb.name, safe='')}", params=dict(request.query_params)
        )
        return json_response(created, 201)
    if vdb.direct and method == "DELETE":
        return json_response(await vdb.couch.request("DELETE", f"/{quote(vdb.name, safe='')}"))
    if method == "PUT":
        raise GatewayError(
            412, "file_exists", "数据库已存在", "The database could not be created, the file already exists."
        )
    raise GatewayError.forbidden("同步数据库不能删除", "this database cannot be deleted")


async def _changes(
    request: Request[Any, Any, Any], vdb: VirtualDatabase, params: dict[str, str]
) -> Response[Any]:
    body = await json_body(request) if request.method == "POST" else {}
    doc_ids = changes_doc_ids(params, body, vdb.direct)
    direct_filter = await direct_changes_filter(vdb.runtime, vdb.name, params, body) if vdb.direct else None
    feed = params.get("feed", "normal")
    if feed not in {"normal", "longpoll"}:
        raise GatewayError.bad_request(
            "只支持 normal 和 longpoll", f"feed={feed} is not supported; use longpoll"
        )
    # checked before any work, so a bad value is a 400 and not an error inside a started stream
    timeout_s = timeout_seconds(params, _LONGPOLL_MAX_S)
    heartbeat_s = heartbeat_seconds(params)
    if params.get("since") == "now":
        # the feed's position when the request came, not at each wake-up of a longpoll
        params = {**params, "since": str(vdb.seqs.encode((await vdb.positions_now())[0]))}
    if feed == "normal":
        return json_response(await vdb.changes(params, doc_ids, direct_filter))
    notifier = vdb.runtime.notifier()
    seen = await notifier.snapshot(vdb.source_dbs)
    # A change from just before the snapshot wakes nobody: the catalog must look for itself.
    vdb.runtime.id_catalog.expire(vdb.source_dbs)
    page = await vdb.changes(params, doc_ids, direct_filter)
    if page["results"]:
        return json_response(page)

    async def wait_for_changes() -> AsyncIterator[bytes]:
        nonlocal seen, page
        loop_deadline = time.monotonic() + timeout_s
        while True:
            remaining = loop_deadline - time.monotonic()
            if remaining <= 0:
                break
            moved = await notifier.wait(seen, min(remaining, heartbeat_s or remaining))
            if moved:
                vdb.runtime.id_catalog.expire(vdb.source_dbs)
                seen = await notifier.snapshot(vdb.source_dbs)
                try:
                    page = await vdb.changes(params, doc_ids, direct_filter)
                except (GatewayError, CouchStatusError, CouchTransportError) as exc:
                    # Headers are gone already: the error can only travel in the body.
                    yield _encoder.encode(error_body_of(exc))
                    return
                if page["results"]:
                    break
            elif heartbeat_s and time.monotonic() < loop_deadline:
                yield b"\n"
        yield _encoder.encode(page)

    # the route also takes POST, whose default status (201) Litestar would otherwise send
    return Stream(content=wait_for_changes(), media_type="application/json", status_code=200)


async def _endpoint(
    request: Request[Any, Any, Any],
    vdb: VirtualDatabase,
    writer: DocumentWriter,
    endpoint: str,
    params: dict[str, str],
) -> Response[Any]:
    method = request.method
    if endpoint == "_changes":
        if method not in {"GET", "POST"}:
            raise _method_not_allowed("GET,POST")
        return await _changes(request, vdb, params)
    if endpoint == "_revs_diff" and method == "POST":
        return json_response(await vdb.revs_diff(revs_diff_body(await _object_body(request))))
    if endpoint == "_bulk_docs" and method == "POST":
        return json_response(await writer.bulk_docs(await _object_body(request)), 201)
    if endpoint == "_bulk_get" and method == "POST":
        docs = bulk_get_requests(await _object_body(request))
        return json_response(await vdb.bulk_get(params, docs))
    if endpoint == "_all_docs" and method in {"GET", "HEAD", "POST"}:
        keys = all_docs_keys(params, await _object_body(request) if method == "POST" else None)
        return json_response(await vdb.all_docs(params, keys))
    if endpoint == "_ensure_full_commit" and method == "POST":
        return json_response({"ok": True, "instance_start_time": "0"}, 201)
    if endpoint in {"_revs_diff", "_bulk_docs", "_bulk_get", "_ensure_full_commit"}:
        raise _method_not_allowed("POST")
    raise GatewayError(404, "not_found", "不支持的接口", f"{endpoint} is not available on this database")


async def _local_doc(
    request: Request[Any, Any, Any], vdb: VirtualDatabase, doc_id: str, params: dict[str, str]
) -> Response[Any]:
    if request.method in {"GET", "HEAD"}:
        return json_response(await vdb.local.get(doc_id))
    if request.method == "PUT":
        body = await _object_body(request, LOCAL_DOC_MAX_BYTES, local_too_large)
        written = await vdb.local.put(doc_id, body)
        vdb.checkpoint_written(body)
        return json_response(written, 201)
    if request.method == "DELETE":
        return json_response(await vdb.local.delete(doc_id, params.get("rev")))
    raise _method_not_allowed("GET,HEAD,PUT,DELETE")


async def _document(
    request: Request[Any, Any, Any],
    vdb: VirtualDatabase,
    writer: DocumentWriter,
    doc_id: str,
    params: dict[str, str],
) -> Response[Any]:
    if request.method in {"GET", "HEAD"}:
        return json_response(await read_document(vdb, doc_id, params))
    if request.method == "PUT":
        return json_response(await writer.put(doc_id, await _object_body(request), params), 201)
    if request.method == "DELETE":
        rev = params.get("rev") or request.headers.get("if-match")
        return json_response(await writer.delete(doc_id, rev))
    raise _method_not_allowed("GET,HEAD,PUT,DELETE")


async def _attachment(
    request: Request[Any, Any, Any],
    vdb: VirtualDatabase,
    writer: DocumentWriter,
    doc_id: str,
    name: str,
    params: dict[str, str],
) -> Response[Any]:
    if request.method == "PUT":
        content = await request.body()
        content_type = request.headers.get("content-type", "application/octet-stream")
        rev = params.get("rev") or request.headers.get("if-match")
        return json_response(await writer.put_attachment(doc_id, name, rev, content, content_type), 201)
    if request.method == "DELETE":
        rev = params.get("rev") or request.headers.get("if-match")
        return json_response(await writer.delete_attachment(doc_id, name, rev))
    if request.method not in {"GET", "HEAD"}:
        raise _method_not_allowed("GET,HEAD,PUT,DELETE")
    source, query = await attachment_query(vdb, doc_id, params)
    return await _serve_attachment(request, vdb.runtime, doc_path(source.db, doc_id, name), query)


async def _serve_attachment(
    request: Request[Any, Any, Any], runtime: Runtime, path: str, params: dict[str, str]
) -> Response[Any]:
    """Stream an attachment with its length and ETag, answering ``Range`` even when CouchDB does not."""
    # The tablet's Accept-Encoding goes along: a photo CouchDB compresses crosses the tablet's link
    # compressed (our CouchDB client otherwise asks for identity).
    wanted_headers = {"range", "if-none-match", "if-range", "accept-encoding"}
    forwarded = {k: v for k, v in request.headers.items() if k.lower() in wanted_headers}
    forwarded.setdefault("accept-encoding", "identity")
    stack = AsyncExitStack()
    response = await stack.enter_async_context(
        runtime.couch.stream(request.method, path, params=params, headers=forwarded)
    )
    headers = {k.lower(): v for k, v in response.headers.items() if k.lower() in _PASSED_ATTACHMENT_HEADERS}
    headers["accept-ranges"] = "bytes"
    status = response.status_code
    chunks: AsyncIterator[bytes] = response.aiter_raw()
    wanted = None
    if status == 200 and "content-encoding" not in response.headers and "content-length" in response.headers:
        total = int(response.headers["content-length"])
        if_range = request.headers.get("if-range")
        if if_range is None or if_range == response.headers.get("etag"):
            try:
                wanted = parse_range(request.headers.get("range"), total)
            except RangeNotSatisfiable:
                await stack.aclose()
                return json_response(
                    {"error": "requested_range_not_satisfiable", "reason": "Requested range not satisfiable"},
                    416,
                    headers={"Content-Range": f"bytes */{total}"},
                )
        if wanted is not None:
            status = 206
            headers["content-range"] = wanted.content_range(total)
            headers["content-length"] = str(wanted.length)
            chunks = slice_stream(chunks, wanted)

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await stack.aclose()

    return Stream(content=body(), status_code=status, headers=headers)
