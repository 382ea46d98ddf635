"""The gateway's own sequence tokens for a virtual database made of several CouchDB databases.

A token records, for each source database, the CouchDB sequence up to which the client has
seen it. CouchDB sequences stay opaque (strings in CouchDB 3, integers in pouchdb-server), so they
are stored verbatim. A source missing from a token starts from the beginning: that is how a
user's new grid reaches them even when their checkpoint is far ahead.
"""

import base64
import binascii
import json
import zlib
from collections.abc import Mapping
from typing import Protocol

import msgspec

from server.gateway._errors import GatewayError

__all__ = ["CompositeSeqs", "NativeSeqs", "Positions", "SeqCodec", "decode_seq", "encode_seq"]

Positions = dict[str, str | int]
_PREFIX = "gp1-"
_MAX_TOKEN_CHARS = 256 * 1024
_MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
"""Far above real tokens (one position per database of a scope; Apache CouchDB's sequences are up to
~200 characters, so even 500 databases stay under 100 KB), and low enough that a forged token cannot
make the gateway unpack or parse megabytes."""


_encoder = msgspec.json.Encoder()


def encode_seq(positions: Mapping[str, str | int]) -> str:
    # Every row of a _changes page carries a token: msgspec writes the same compact JSON as
    # json.dumps(separators=(",", ":")) for these ASCII keys and sequences, in half the time.
    payload = _encoder.encode(dict(sorted(positions.items())))
    return _PREFIX + base64.urlsafe_b64encode(zlib.compress(payload, 6)).decode().rstrip("=")


def decode_seq(token: str | int | None) -> Positions:
    """Positions from a token; ``0``, empty and absent all mean "from the start"."""
    if token is None or token in ("", "0", 0):
        return {}
    if not isinstance(token, str) or not token.startswith(_PREFIX):
        raise GatewayError.bad_request(
            "同步序号无效，请重新同步", f"Malformed sequence token {str(token)[:40]!r}"
        )
    body = token[len(_PREFIX) :]
    try:
        if len(body) > _MAX_TOKEN_CHARS:
            raise ValueError("token too long")
        # bounded: a token comes from the client, and a few KB of zlib can unpack to megabytes
        inflater = zlib.decompressobj()
        raw = inflater.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)), _MAX_PAYLOAD_BYTES)
        if inflater.unconsumed_tail:
            raise ValueError("token payload too large")
        decoded = json.loads(raw)
    except (binascii.Error, zlib.error, ValueError, RecursionError) as exc:
        raise GatewayError.bad_request(
            "同步序号无效，请重新同步", f"Malformed sequence token {token[:40]!r}"
        ) from exc
    if not isinstance(decoded, dict) or not all(isinstance(v, str | int) for v in decoded.values()):
        raise GatewayError.bad_request("同步序号无效，请重新同步", "Malformed sequence token")
    return {str(k): v for k, v in decoded.items()}


class SeqCodec(Protocol):
    def decode(self, token: str | int | None) -> Positions: ...

    def encode(self, positions: Mapping[str, str | int]) -> str | int: ...


class CompositeSeqs:
    """The virtual database's tokens: one position per source, packed (see the module docstring)."""

    def decode(self, token: str | int | None) -> Positions:
        return decode_seq(token)

    def encode(self, positions: Mapping[str, str | int]) -> str | int:
        return encode_seq(positions)


class NativeSeqs:
    """A real database seen directly (admins): CouchDB's own sequences, untouched."""

    def __init__(self, key: str) -> None:
        self.key = key

    def decode(self, token: str | int | None) -> Positions:
        return {} if token in (None, "", "0", 0) or token is None else {self.key: token}

    def encode(self, positions: Mapping[str, str | int]) -> str | int:
        return positions.get(self.key, 0)
