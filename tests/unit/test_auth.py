import base64

import pytest

from server.auth import (
    AuthFailure,
    TokenError,
    TokenSigner,
    hash_password,
    parse_credentials,
    verify_password,
)

pytestmark = pytest.mark.unit


def test_passwords_are_argon2_hashed() -> None:
    hashed = hash_password("correct horse")
    assert hashed.startswith("$argon2id$")
    assert "correct horse" not in hashed
    assert verify_password(hashed, "correct horse")
    assert not verify_password(hashed, "wrong")
    assert not verify_password("not-a-hash", "x")


def test_tokens_expire_and_are_bound_to_the_password_hash() -> None:
    signer = TokenSigner("k" * 48, ttl_s=60)
    token, expires = signer.issue("vol1", "$argon2id$hash-1", now=1_000_000)
    assert expires == 1_000_060
    with pytest.raises(TokenError, match="expired"):
        signer.verify(token)  # issued long ago
    fresh, _ = signer.issue("vol1", "$argon2id$hash-1")
    claims = signer.verify(fresh)
    assert claims.username == "vol1"
    other_hash, _ = signer.issue("vol1", "$argon2id$hash-2")
    assert signer.verify(other_hash).fingerprint != claims.fingerprint
    with pytest.raises(TokenError):
        TokenSigner("another-key" * 5, ttl_s=60).verify(fresh)


def test_credentials_are_parsed_from_basic_bearer_or_cookie() -> None:
    basic = "Basic " + base64.b64encode(b"vol1:p:w").decode()
    assert parse_credentials(basic, None).password == "p:w"  # type: ignore[union-attr]
    assert parse_credentials("Bearer abc", "cookie").token == "abc"  # type: ignore[union-attr]
    assert parse_credentials(None, "cookie-token").token == "cookie-token"  # type: ignore[union-attr]
    assert parse_credentials(None, None) is None
    with pytest.raises(AuthFailure):
        parse_credentials("Basic !!!", None)
    with pytest.raises(AuthFailure):
        parse_credentials("Digest x", None)
