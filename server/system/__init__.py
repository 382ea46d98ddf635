"""System endpoints: health and token issuance."""

from server.system._auth import TokenRequest, TokenResponse, issue_token
from server.system._health import health

__all__ = ["TokenRequest", "TokenResponse", "health", "issue_token"]
