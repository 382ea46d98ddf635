"""CouchDB's ``_session``: cookie login for browsers and PouchDB, with a signed, expiring token."""

from typing import Any
from urllib.parse import parse_qs

from litestar import Request, Response
from litestar.datastructures import Cookie

from server.auth import SESSION_COOKIE, AuthFailure, Principal
from server.gateway._errors import GatewayError
from server.gateway._http import authenticate, json_response
from server.gateway._params import decode_json
from server.runtime import Runtime

__all__ = ["session_endpoint"]


def _user_ctx(principal: Principal | None) -> dict[str, Any]:
    if principal is None:
        return {"name": None, "roles": []}
    roles = [str(principal.role)] + (["_admin"] if principal.is_admin else [])
    return {"name": principal.username, "roles": roles}


async def _login_form(request: Request[Any, Any, Any]) -> tuple[str, str]:
    raw = await request.body()
    content_type = request.headers.get("content-type", "")
    if "application/x-www-form-urlencoded" in content_type:
        form = parse_qs(raw.decode("utf-8", "replace"))
        return form.get("name", [""])[0], form.get("password", [""])[0]
    body = decode_json(raw, "请求体", "Request body") if raw else {}
    if not isinstance(body, dict):
        raise GatewayError.bad_request("请求体必须是对象", "Request body must be a JSON object")
    return str(body.get("name", body.get("username", ""))), str(body.get("password", ""))


async def session_endpoint(request: Request[Any, Any, Any], runtime: Runtime) -> Response[Any]:
    secure = request.url.scheme == "https"
    if request.method == "POST":
        name, password = await _login_form(request)
        principal, password_hash = await runtime.authenticator.password_login(name, password)
        token, _ = runtime.authenticator.signer.issue(principal.username, password_hash)
        response = json_response({"ok": True, **_user_ctx(principal)})
        response.set_cookie(
            Cookie(
                key=SESSION_COOKIE,
                value=token,
                max_age=runtime.settings.auth.token_ttl_s,
                path="/",
                httponly=True,
                secure=secure,
                samesite="lax",
            )
        )
        return response
    if request.method == "DELETE":
        response = json_response({"ok": True})
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response
    if request.method in {"GET", "HEAD"}:
        current: Principal | None
        try:
            current = await authenticate(request, runtime)
        except (GatewayError, AuthFailure):
            current = None
        method = None
        if current is not None:
            method = "cookie" if not request.headers.get("authorization") else "default"
        return json_response(
            {
                "ok": True,
                "userCtx": _user_ctx(current),
                "info": {"authentication_handlers": ["cookie", "default"], "authenticated": method},
            }
        )
    raise GatewayError(405, "method_not_allowed", "不支持的请求方法", "Only GET, POST and DELETE are allowed")
