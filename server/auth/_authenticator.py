"""Turns request credentials (Basic, Bearer, ``AuthSession`` cookie) into a Principal.

argon2 is deliberately slow, and replication sends hundreds of requests with the same Basic
header, so a verified (username, password) pair is remembered as the password hash it matched.
The user row is still read on every request: a deactivated user or changed password takes effect
at once.
"""

import base64
import binascii
import hashlib
import secrets
import time
from dataclasses import dataclass

import anyio
from sqlmodel import select

from server.auth._passwords import verify_password
from server.auth._principal import Principal
from server.auth._tokens import TokenError, TokenSigner, password_fingerprint
from server.db import SessionMaker
from server.db.models import User

__all__ = ["SESSION_COOKIE", "AuthFailure", "Authenticator", "Credentials", "parse_credentials"]

SESSION_COOKIE = "AuthSession"
_CACHE_LIMIT = 10_000
_USER_ROW_TTL_S = 1.0  # a replication sends bursts of requests; a changed user is seen within a second


class AuthFailure(Exception):
    """Credentials were given but are wrong; ``reason`` is safe to show."""

    def __init__(self, reason_zh: str, reason_en: str) -> None:
        super().__init__(reason_en)
        self.reason_zh = reason_zh
        self.reason_en = reason_en


@dataclass(frozen=True)
class Credentials:
    scheme: str  # "basic" or "token"
    username: str = ""
    password: str = ""
    token: str = ""


def parse_credentials(authorization: str | None, session_cookie: str | None) -> Credentials | None:
    if authorization:
        scheme, _, value = authorization.partition(" ")
        scheme = scheme.lower()
        if scheme == "basic":
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise AuthFailure("认证头格式错误", "Malformed Basic authorization header") from exc
            username, sep, password = decoded.partition(":")
            if not sep:
                raise AuthFailure("认证头格式错误", "Malformed Basic authorization header")
            return Credentials("basic", username=username, password=password)
        if scheme == "bearer":
            return Credentials("token", token=value.strip())
        raise AuthFailure("不支持的认证方式", f"Unsupported authorization scheme {scheme!r}")
    if session_cookie:
        return Credentials("token", token=session_cookie)
    return None


class Authenticator:
    def __init__(self, sessions: SessionMaker, signer: TokenSigner, cache_ttl_s: int) -> None:
        self._sessions = sessions
        self.signer = signer
        self._cache_ttl_s = cache_ttl_s
        self._pepper = secrets.token_bytes(32)
        self._verified: dict[bytes, tuple[str, float]] = {}
        self._rows: dict[str, tuple[User | None, float]] = {}

    async def _user(self, username: str) -> User | None:
        now = time.monotonic()
        cached = self._rows.get(username)
        if cached is not None and cached[1] > now:
            return cached[0]
        async with self._sessions() as session:
            result = await session.exec(select(User).where(User.username == username))
            user = result.first()
        if len(self._rows) >= _CACHE_LIMIT:
            self._rows.clear()
        self._rows[username] = (user, now + _USER_ROW_TTL_S)
        return user

    def forget(self, username: str) -> None:
        """Drop what is remembered of a user (their row changed: password, role, scope, active)."""
        self._rows.pop(username, None)

    async def password_login(self, username: str, password: str) -> tuple[Principal, str]:
        """Check a username and password; returns the principal and the hash it matched."""
        user = await self._user(username)
        if user is None or not user.is_active:
            raise AuthFailure("用户名或密码错误", "Name or password is incorrect.")
        key = hashlib.sha256(self._pepper + username.encode() + b"\0" + password.encode()).digest()
        cached = self._verified.get(key)
        now = time.monotonic()
        if cached is None or cached[0] != user.password_hash or cached[1] < now:
            if not await anyio.to_thread.run_sync(verify_password, user.password_hash, password):
                raise AuthFailure("用户名或密码错误", "Name or password is incorrect.")
            if len(self._verified) >= _CACHE_LIMIT:
                self._verified.clear()
            self._verified[key] = (user.password_hash, now + self._cache_ttl_s)
        return Principal.of(user), user.password_hash

    async def authenticate(self, credentials: Credentials) -> Principal:
        if credentials.scheme == "basic":
            principal, _ = await self.password_login(credentials.username, credentials.password)
            return principal
        try:
            claims = self.signer.verify(credentials.token)
        except TokenError as exc:
            raise AuthFailure("登录凭证无效或已过期", f"Token rejected: {exc}") from exc
        user = await self._user(claims.username)
        if (
            user is None
            or not user.is_active
            or password_fingerprint(user.password_hash) != claims.fingerprint
        ):
            raise AuthFailure("登录凭证已失效", "Token no longer valid for this user")
        return Principal.of(user)
