"""``POST /api/auth/token``: trade a username and password for a signed Bearer token."""

from datetime import UTC, datetime

from litestar import post
from pydantic import BaseModel, Field

from server.localtime import to_local
from server.runtime import Runtime

__all__ = ["TokenRequest", "TokenResponse", "issue_token"]


class TokenRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105  (the OAuth2 token type, not a secret)
    expires_at: datetime
    username: str
    role: str


@post("/api/auth/token", summary="Issue a Bearer token", tags=["auth"])
async def issue_token(runtime: Runtime, data: TokenRequest) -> TokenResponse:
    principal, password_hash = await runtime.authenticator.password_login(data.username, data.password)
    token, expires = runtime.authenticator.signer.issue(principal.username, password_hash)
    return TokenResponse(
        access_token=token,
        expires_at=to_local(datetime.fromtimestamp(expires, UTC), runtime.settings.timezone),
        username=principal.username,
        role=str(principal.role),
    )
