"""Errors raised by the CouchDB client.

    CouchError
    ├── CouchTransportError          no usable answer from CouchDB
    │   ├── CouchTimeout             it did not answer in time
    │   └── CouchUnavailable         connection refused, reset or cut mid-answer
    └── CouchStatusError             CouchDB answered with an error status
        ├── CouchBadRequest          400
        ├── CouchUnauthorized        401
        ├── CouchForbidden           403
        ├── CouchNotFound            404
        ├── CouchConflict            409
        ├── CouchPreconditionFailed  412 (database exists, ...)
        └── CouchPayloadTooLarge     413

Per-document rejections inside ``_bulk_docs`` are results, not exceptions: see ``BulkDocResult``.
No httpx exception escapes this package.
"""

from typing import Any

__all__ = [
    "CouchBadRequest",
    "CouchConflict",
    "CouchError",
    "CouchForbidden",
    "CouchNotFound",
    "CouchPayloadTooLarge",
    "CouchPreconditionFailed",
    "CouchStatusError",
    "CouchTimeout",
    "CouchTransportError",
    "CouchUnauthorized",
    "CouchUnavailable",
    "status_error",
]


class CouchError(Exception):
    """Root of every error the CouchDB client raises."""


class CouchTransportError(CouchError):
    """CouchDB could not be reached or its answer was cut."""


class CouchTimeout(CouchTransportError):
    """CouchDB did not answer in time."""


class CouchUnavailable(CouchTransportError):
    """The connection to CouchDB failed."""


class CouchStatusError(CouchError):
    """CouchDB answered with an error status; ``error`` and ``reason`` are its own words."""

    def __init__(self, status: int, error: str, reason: str, body: Any = None) -> None:
        super().__init__(f"{status} {error}: {reason}")
        self.status = status
        self.error = error
        self.reason = reason
        self.body = body


class CouchBadRequest(CouchStatusError):
    """400."""


class CouchUnauthorized(CouchStatusError):
    """401."""


class CouchForbidden(CouchStatusError):
    """403."""


class CouchNotFound(CouchStatusError):
    """404."""


class CouchConflict(CouchStatusError):
    """409."""


class CouchPreconditionFailed(CouchStatusError):
    """412."""


class CouchPayloadTooLarge(CouchStatusError):
    """413."""


_BY_STATUS: dict[int, type[CouchStatusError]] = {
    400: CouchBadRequest,
    401: CouchUnauthorized,
    403: CouchForbidden,
    404: CouchNotFound,
    409: CouchConflict,
    412: CouchPreconditionFailed,
    413: CouchPayloadTooLarge,
}


def status_error(status: int, body: Any) -> CouchStatusError:
    """The most specific error for an error answer from CouchDB."""
    error = "unknown_error"
    reason = ""
    if isinstance(body, dict):
        error = str(body.get("error", error))
        reason = str(body.get("reason", ""))
    elif isinstance(body, str | bytes):
        reason = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return _BY_STATUS.get(status, CouchStatusError)(status, error, reason, body)
