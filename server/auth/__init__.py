"""Authentication: argon2 passwords, signed tokens, and the principal handlers work with."""

from server.auth._authenticator import (
    SESSION_COOKIE,
    Authenticator,
    AuthFailure,
    Credentials,
    parse_credentials,
)
from server.auth._passwords import hash_password, needs_rehash, verify_password
from server.auth._principal import Principal
from server.auth._tokens import TokenError, TokenSigner, password_fingerprint

__all__ = [
    "SESSION_COOKIE",
    "AuthFailure",
    "Authenticator",
    "Credentials",
    "Principal",
    "TokenError",
    "TokenSigner",
    "hash_password",
    "needs_rehash",
    "parse_credentials",
    "password_fingerprint",
    "verify_password",
]
