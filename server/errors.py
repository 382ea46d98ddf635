"""Errors of the case API, answered as ``{"error", "reason"}`` with the reason in Chinese, then English."""

from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from server.auth import AuthFailure
from server.db import SQL_RETRY_AFTER_S, SQL_UNAVAILABLE, SQL_UNAVAILABLE_REASON
from sync.couch import CouchStatusError, CouchTransportError

__all__ = ["COUCH_UNAVAILABLE_REASON", "RETRY_AFTER", "ApiError", "exception_handlers"]


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        error: str,
        reason_zh: str,
        reason_en: str,
        *,
        fields: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(reason_en)
        self.status = status
        self.error = error
        self.reason_zh = reason_zh
        self.reason_en = reason_en
        self.fields = fields
        """Per-field problems (path, reason_zh, reason_en), when the request named several."""

    @classmethod
    def unauthorized(cls) -> "ApiError":
        return cls(401, "unauthorized", "请先登录", "authentication required")

    @classmethod
    def forbidden(cls, reason_zh: str, reason_en: str) -> "ApiError":
        return cls(403, "forbidden", reason_zh, reason_en)

    @classmethod
    def not_found(cls, reason_zh: str = "不存在", reason_en: str = "not found") -> "ApiError":
        return cls(404, "not_found", reason_zh, reason_en)


def _body(error: str, reason_zh: str, reason_en: str, **extra: Any) -> dict[str, Any]:
    return {
        "error": error,
        "reason": f"{reason_zh} / {reason_en}",
        "reason_zh": reason_zh,
        "reason_en": reason_en,
        **extra,
    }


def _api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[Any]:
    headers = {"WWW-Authenticate": 'Basic realm="gridpatrol"'} if exc.status == 401 else None
    extra = {"fields": exc.fields} if exc.fields is not None else {}
    return Response(
        _body(exc.error, exc.reason_zh, exc.reason_en, **extra), status_code=exc.status, headers=headers
    )


def _auth_failure(_: Request[Any, Any, Any], exc: AuthFailure) -> Response[Any]:
    return Response(
        _body("unauthorized", exc.reason_zh, exc.reason_en),
        status_code=401,
        headers={"WWW-Authenticate": 'Basic realm="gridpatrol"'},
    )


def _validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    return Response(_body("bad_request", "请求参数有误", str(exc.detail), fields=exc.extra), status_code=400)


def _http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    zh = {404: "地址不存在", 405: "不支持的请求方法", 413: "请求体过大"}.get(exc.status_code, "请求失败")
    return Response(_body("http_error", zh, str(exc.detail)), status_code=exc.status_code)


def _too_deep(_: Request[Any, Any, Any], exc: RecursionError) -> Response[Any]:
    # Litestar's JSON decoder recurses: a body nested a thousand levels deep ends here, not in a 500
    return Response(
        _body("bad_request", "请求体嵌套过深", "the request body is nested too deeply"), status_code=400
    )


COUCH_UNAVAILABLE_REASON = ("文档库暂时不可用，请稍后重试", "the document store is unavailable, retry later")
"""The reason of every 503 for an unreachable CouchDB, from the case API and the sync gateway alike."""
RETRY_AFTER = {"Retry-After": str(SQL_RETRY_AFTER_S)}


def _unavailable(reason: tuple[str, str]) -> Response[Any]:
    """503 with a retry hint: a store is away for now, the request may succeed later."""
    return Response(
        _body("service_unavailable", *reason),
        status_code=503,
        headers=RETRY_AFTER,
    )


def _sql_unavailable(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return _unavailable(SQL_UNAVAILABLE_REASON)


def _couch_unavailable(_: Request[Any, Any, Any], exc: CouchTransportError) -> Response[Any]:
    return _unavailable(COUCH_UNAVAILABLE_REASON)


def _couch_answered_an_error(_: Request[Any, Any, Any], exc: CouchStatusError) -> Response[Any]:
    return Response(
        _body("bad_gateway", "文档库返回错误", f"the document store answered {exc.status}: {exc.reason}"),
        status_code=502,
    )


exception_handlers: dict[Any, Any] = {
    CouchTransportError: _couch_unavailable,
    CouchStatusError: _couch_answered_an_error,
    **dict.fromkeys(SQL_UNAVAILABLE, _sql_unavailable),
    ApiError: _api_error,
    AuthFailure: _auth_failure,
    ValidationException: _validation,
    HTTPException: _http,
    RecursionError: _too_deep,
}
