"""System endpoints: health and token issuance."""

from server.system._auth import TokenRequest, TokenResponse, issue_token
from server.system._health import health
from server.system._metrics import MetricsPublic, metrics
from server.system._worker_health import WORKER_STALE_S, worker_health

__all__ = [
    "WORKER_STALE_S",
    "MetricsPublic",
    "TokenRequest",
    "TokenResponse",
    "health",
    "issue_token",
    "metrics",
    "worker_health",
]
