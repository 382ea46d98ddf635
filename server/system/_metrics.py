"""``GET /api/metrics``: what this gateway process has done and how much memory it holds (admins)."""

import resource

from litestar import get
from pydantic import BaseModel

from server.auth import Principal
from server.errors import ApiError
from server.runtime import Runtime

__all__ = ["MetricsPublic", "metrics"]


class MetricsPublic(BaseModel):
    docs_read: int
    """Documents this process made CouchDB hand over since it started."""
    couch_requests: dict[str, dict[str, int]]
    """Requests this process sent to CouchDB: database → endpoint (``_changes``, ``doc`` ...) → count."""
    rss_bytes: int
    peak_rss_bytes: int


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:  # noqa: PTH123  (Linux; optional)
            return int(statm.read().split()[1]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return 0


@get("/api/metrics", summary="Counters and memory of this process (admin)", tags=["system"])
async def metrics(runtime: Runtime, principal: Principal) -> MetricsPublic:
    if not principal.is_admin:
        raise ApiError.forbidden("只有管理员可以查看运行指标", "only admins may read metrics")
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    requests: dict[str, dict[str, int]] = {}
    for (db, endpoint), count in runtime.couch.requests.items():
        requests.setdefault(db, {})[endpoint] = count
    return MetricsPublic(
        docs_read=runtime.metrics.docs_read,
        couch_requests=requests,
        rss_bytes=_rss_bytes(),
        peak_rss_bytes=peak_kib * 1024,
    )
