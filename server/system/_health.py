"""``GET /health``: is CouchDB reachable, is SQL reachable. 503 when either is not."""

import asyncio
from typing import Any

from litestar import Response, get
from sqlalchemy import text

from server.runtime import Runtime
from sync.couch import CouchError

__all__ = ["health"]

_CHECK_TIMEOUT_S = 5.0


async def _check_sql(runtime: Runtime) -> dict[str, Any]:
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT_S), runtime.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:
        return {"ok": False, "detail": f"{type(exc).__name__}: {exc}"[:300]}
    return {"ok": True, "backend": runtime.engine.dialect.name}


async def _check_couch(runtime: Runtime) -> dict[str, Any]:
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT_S):
            info = await runtime.couch.server_info()
    except (CouchError, TimeoutError) as exc:
        return {"ok": False, "detail": f"{type(exc).__name__}: {exc}"[:300]}
    return {"ok": True, "version": info.get("version")}


@get("/health", summary="Reachability of CouchDB and SQL", tags=["system"])
async def health(runtime: Runtime) -> Response[dict[str, Any]]:
    sql, couch = await asyncio.gather(_check_sql(runtime), _check_couch(runtime))
    healthy = sql["ok"] and couch["ok"]
    return Response(
        {"status": "ok" if healthy else "unhealthy", "checks": {"sql": sql, "couchdb": couch}},
        status_code=200 if healthy else 503,
    )
