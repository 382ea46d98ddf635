"""Shared HTTP helpers of the gateway: JSON answers, CouchDB-shaped errors, authentication."""

from collections.abc import Callable
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException

from server.auth import SESSION_COOKIE, AuthFailure, Principal, parse_credentials
from server.errors import COUCH_UNAVAILABLE_REASON, RETRY_AFTER
from server.gateway._errors import GatewayError, bilingual, error_body
from server.gateway._params import decode_json
from server.runtime import Runtime
from sync.couch import CouchStatusError, CouchTransportError

__all__ = [
    "authenticate",
    "error_body_of",
    "error_response",
    "json_body",
    "json_response",
    "limited_body",
]

_encoder = msgspec.json.Encoder()


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(
        content=_encoder.encode(body), status_code=status, media_type="application/json", headers=headers
    )


def _status_and_body(exc: Exception) -> tuple[int, dict[str, Any]]:
    if isinstance(exc, GatewayError):
        return exc.status, exc.body()
    if isinstance(exc, AuthFailure):
        return 401, error_body("unauthorized", bilingual(exc.reason_zh, exc.reason_en))
    if isinstance(exc, CouchStatusError):
        return exc.status, exc.body if isinstance(exc.body, dict) else error_body(exc.error, exc.reason)
    if isinstance(exc, CouchTransportError):
        return 503, error_body("service_unavailable", bilingual(*COUCH_UNAVAILABLE_REASON))
    if isinstance(exc, HTTPException):
        if exc.status_code == 413:
            return 413, error_body(
                "too_large", bilingual("请求体过大，请分批同步", "the request entity is too large")
            )
        return exc.status_code, error_body("bad_request", str(exc.detail))
    raise exc


def error_body_of(exc: Exception) -> dict[str, Any]:
    """CouchDB's ``{error, reason}`` for a gateway, CouchDB, auth or HTTP error."""
    return _status_and_body(exc)[1]


def error_response(exc: Exception) -> Response[bytes]:
    status, body = _status_and_body(exc)
    return json_response(body, status, RETRY_AFTER if status == 503 else None)


async def limited_body(
    request: Request[Any, Any, Any], max_bytes: int, too_large: Callable[[], GatewayError]
) -> bytes:
    """The request body, refused with ``too_large()`` past ``max_bytes`` before the rest is read
    (the route's own limit is meant for photo batches, megabytes)."""
    declared = request.content_length
    if declared is not None and declared > max_bytes:
        raise too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise too_large()
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(
    request: Request[Any, Any, Any],
    max_bytes: int | None = None,
    too_large: Callable[[], GatewayError] | None = None,
) -> Any:
    """The JSON body; with ``max_bytes``, refused with ``too_large()`` past that size."""
    if max_bytes is not None and too_large is not None:
        raw = await limited_body(request, max_bytes, too_large)
    else:
        raw = await request.body()
    return decode_json(raw, "请求体", "Request body") if raw else {}


async def authenticate(request: Request[Any, Any, Any], runtime: Runtime) -> Principal:
    credentials = parse_credentials(request.headers.get("authorization"), request.cookies.get(SESSION_COOKIE))
    if credentials is None:
        raise GatewayError(401, "unauthorized", "请先登录", "You are not authorized to access this db.")
    return await runtime.authenticator.authenticate(credentials)
