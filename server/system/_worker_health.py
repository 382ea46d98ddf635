"""``GET /health/worker``: how each merge worker is doing, from the heartbeats the workers write.

503 when no worker has reported success recently (none running, or every one failing: CouchDB or
SQL unreachable, backing off). Each worker's last error and consecutive failures are listed.
"""

from datetime import timedelta
from typing import Any

from litestar import Response, get
from sqlmodel import col, select

from server.db.models import WorkerHeartbeat, as_utc, utc_now
from server.runtime import Runtime

__all__ = ["WORKER_STALE_S", "worker_health"]

WORKER_STALE_S = 120.0
"""A worker that has not reported for this long is considered gone."""


@get("/health/worker", summary="Merge workers: last pass, last error", tags=["system"])
async def worker_health(runtime: Runtime) -> Response[dict[str, Any]]:
    now = utc_now()
    try:
        async with runtime.sessions() as session:
            rows = (
                await session.exec(select(WorkerHeartbeat).order_by(col(WorkerHeartbeat.worker_id)))
            ).all()
    except Exception as exc:  # the SQL store itself is down: that is the answer
        return Response(
            {"status": "unhealthy", "workers": [], "detail": f"{type(exc).__name__}: {exc}"[:300]},
            status_code=503,
        )
    fresh = timedelta(seconds=max(WORKER_STALE_S, 4 * runtime.settings.worker.max_backoff_s))
    workers = [
        {
            "worker_id": row.worker_id,
            "healthy": row.healthy,
            "alive": now - as_utc(row.beat_at) <= fresh,
            "last_error": row.last_error,
            "consecutive_errors": row.consecutive_errors,
            "last_ok_at": as_utc(row.last_ok_at).isoformat() if row.last_ok_at else None,
            "beat_at": as_utc(row.beat_at).isoformat(),
        }
        for row in rows
    ]
    healthy = any(w["healthy"] and w["alive"] for w in workers)
    return Response(
        {"status": "ok" if healthy else "unhealthy", "workers": workers}, status_code=200 if healthy else 503
    )
