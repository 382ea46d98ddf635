"""Our CouchDB client: asyncio, httpx-based, typed errors."""

from sync.couch._client import DEFAULT_LIMITS, DEFAULT_TIMEOUT, CouchClient, Params, doc_path
from sync.couch._errors import (
    CouchBadRequest,
    CouchConflict,
    CouchError,
    CouchForbidden,
    CouchNotFound,
    CouchPayloadTooLarge,
    CouchPreconditionFailed,
    CouchStatusError,
    CouchTimeout,
    CouchTransportError,
    CouchUnauthorized,
    CouchUnavailable,
    status_error,
)

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_TIMEOUT",
    "CouchBadRequest",
    "CouchClient",
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
    "Params",
    "doc_path",
    "status_error",
]
