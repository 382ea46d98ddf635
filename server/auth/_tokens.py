"""Signed, expiring tokens (JWT, HS256) used as Bearer tokens and as the ``_session`` cookie.

A token carries a fingerprint of the user's password hash, so changing a password ends every
token issued before.
"""

import hashlib
import secrets
import time
from dataclasses import dataclass

import jwt

__all__ = ["TokenError", "TokenSigner", "password_fingerprint"]

_ALGORITHM = "HS256"
_ISSUER = "gridpatrol"


class TokenError(ValueError):
    """The token is malformed, badly signed or expired."""


def password_fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TokenClaims:
    username: str
    fingerprint: str
    expires_at: int


class TokenSigner:
    def __init__(self, secret_key: str, ttl_s: int) -> None:
        # Development without a configured key: a per-process random key (tokens die with the process).
        self._key = secret_key or secrets.token_urlsafe(48)
        self.ttl_s = ttl_s

    def issue(self, username: str, password_hash: str, *, now: float | None = None) -> tuple[str, int]:
        issued = int(now if now is not None else time.time())
        expires = issued + self.ttl_s
        token = jwt.encode(
            {
                "sub": username,
                "pwf": password_fingerprint(password_hash),
                "iat": issued,
                "exp": expires,
                "iss": _ISSUER,
            },
            self._key,
            algorithm=_ALGORITHM,
        )
        return token, expires

    def verify(self, token: str) -> TokenClaims:
        try:
            claims = jwt.decode(
                token, self._key, algorithms=[_ALGORITHM], issuer=_ISSUER, options={"require": ["exp", "sub"]}
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenError("token expired") from exc
        except jwt.PyJWTError as exc:
            raise TokenError(f"invalid token: {exc}") from exc
        return TokenClaims(str(claims["sub"]), str(claims.get("pwf", "")), int(claims["exp"]))
