"""System endpoints: health and token issuance."""

from server.system._auth import TokenRequest, TokenResponse, issue_token
from server.system._health import health
from server.system._metrics import MetricsPublic, metrics

__all__ = ["MetricsPublic", "TokenRequest", "TokenResponse", "health", "issue_token", "metrics"]
