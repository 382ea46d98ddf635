"""A small asyncio CouchDB client on httpx: the calls the gateway and the worker need, nothing more."""

from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from urllib.parse import quote, unquote

import httpx
import msgspec

from sync.couch._errors import CouchPreconditionFailed, CouchTimeout, CouchUnavailable, status_error

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_TIMEOUT",
    "CouchClient",
    "Params",
    "doc_path",
]

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=32)
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}

Params = Mapping[str, str | int | bool | None]

_encoder = msgspec.json.Encoder()
_DOC_PREFIXES = frozenset({"_design", "_local"})


def _segment(value: str) -> str:
    if value in {".", ".."}:
        # quote() leaves dots alone, and httpx (like any URL library) resolves dot segments: a
        # document named ".." would otherwise address the server above its database.
        return value.replace(".", "%2E")
    return quote(value, safe="")


def doc_path(db: str, doc_id: str, *rest: str) -> str:
    """The URL path of a document (and optionally an attachment), each segment percent-encoded.

    Design and local documents keep their literal prefix, as CouchDB routes on it.
    """
    for prefix in ("_design/", "_local/"):
        if doc_id.startswith(prefix):
            encoded_id = prefix + _segment(doc_id.removeprefix(prefix))
            break
    else:
        encoded_id = _segment(doc_id)
    tail = "".join("/" + _segment(part) for part in rest)
    return f"/{_segment(db)}/{encoded_id}{tail}"


def _query(params: Params | None) -> dict[str, str]:
    if not params:
        return {}
    query: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            query[key] = "true" if value else "false"
        else:
            query[key] = str(value)
    return query


def _request_kind(path: str) -> tuple[str, str]:
    """(database, endpoint) of a request path for the request counters: ``("gp_grid_zr01",
    "_bulk_docs")``; documents and attachments count as ``doc``, server endpoints as ``("", name)``."""
    parts = path.lstrip("/").split("/", 2)
    if not parts[0] or parts[0].startswith("_"):
        return "", parts[0]
    db = unquote(parts[0])
    if len(parts) == 1:
        return db, ""
    return db, parts[1] if parts[1].startswith("_") and parts[1] not in _DOC_PREFIXES else "doc"


def _decode(content: bytes) -> Any:
    if not content:
        return None
    try:
        return msgspec.json.decode(content)
    except msgspec.DecodeError:
        return content.decode("utf-8", "replace")


@contextmanager
def _mapped_transport_errors() -> Iterator[None]:
    try:
        yield
    except httpx.TimeoutException as exc:
        raise CouchTimeout(f"CouchDB did not answer in time: {exc!r}") from exc
    except (httpx.TransportError, httpx.StreamError) as exc:
        raise CouchUnavailable(f"CouchDB connection failed: {exc!r}") from exc


class CouchClient:
    """Asyncio client for one CouchDB server, authenticated as our service account."""

    def __init__(
        self,
        url: str,
        username: str = "",
        password: str = "",
        *,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        limits: httpx.Limits = DEFAULT_LIMITS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        auth = httpx.BasicAuth(username, password) if username else None
        self.url = url.rstrip("/")
        # CouchDB sits next to us: compressing its answers would only cost CPU on both sides (the
        # gateway compresses what it sends to tablets itself).
        self._http = httpx.AsyncClient(
            base_url=self.url,
            auth=auth,
            timeout=timeout,
            limits=limits,
            transport=transport,
            headers={"Accept-Encoding": "identity"},
        )
        self.requests: Counter[tuple[str, str]] = Counter()
        """Requests sent, by (database, endpoint): what each database was asked (``/api/metrics``)."""

    async def __aenter__(self) -> "CouchClient":
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- low level --------------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send one request and return the decoded JSON answer; error statuses raise."""
        body = _encoder.encode(json) if json is not None else content
        merged = dict(JSON_HEADERS)
        if headers:
            merged.update(headers)
        extra: dict[str, Any] = {}
        if timeout is not None:
            extra["timeout"] = httpx.Timeout(timeout, connect=5.0)
        self.requests[_request_kind(path)] += 1
        with _mapped_transport_errors():
            response = await self._http.request(
                method, path, params=_query(params) or None, content=body, headers=merged, **extra
            )
        decoded = _decode(response.content)
        if response.status_code >= 400:
            raise status_error(response.status_code, decoded)
        return decoded

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        raise_for_status: bool = True,
    ) -> AsyncIterator[httpx.Response]:
        """An open streaming response (attachments, forwarding); error statuses raise unless asked not to."""
        request = self._http.build_request(
            method, path, params=_query(params) or None, content=content, headers=dict(headers or {})
        )
        self.requests[_request_kind(path)] += 1
        with _mapped_transport_errors():
            response = await self._http.send(request, stream=True)
        try:
            if raise_for_status and response.status_code >= 400:
                with _mapped_transport_errors():
                    body = await response.aread()
                raise status_error(response.status_code, _decode(body))
            yield response
        finally:
            await response.aclose()

    # -- server and databases --------------------------------------------------------------------

    async def server_info(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", "/")
        return result

    async def db_info(self, db: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", f"/{_segment(db)}")
        return result

    async def create_db(self, db: str) -> bool:
        """Create ``db``; False when it already existed (CouchDB's 412)."""
        try:
            await self.request("PUT", f"/{_segment(db)}")
        except CouchPreconditionFailed:
            return False
        return True

    async def delete_db(self, db: str) -> None:
        await self.request("DELETE", f"/{_segment(db)}")

    async def put_security(self, db: str, security: Mapping[str, Any]) -> None:
        await self.request("PUT", f"/{_segment(db)}/_security", json=security)

    async def compact(self, db: str) -> None:
        """Start compacting ``db`` (CouchDB does it in the background; this does not wait)."""
        await self.request("POST", f"/{_segment(db)}/_compact", json={})

    # -- documents --------------------------------------------------------------------------------

    async def get_doc(self, db: str, doc_id: str, params: Params | None = None) -> Any:
        return await self.request("GET", doc_path(db, doc_id), params=params)

    async def put_doc(self, db: str, doc: Mapping[str, Any], params: Params | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "PUT", doc_path(db, str(doc["_id"])), json=doc, params=params
        )
        return result

    async def bulk_docs(
        self, db: str, docs: Sequence[Mapping[str, Any]], *, new_edits: bool = True
    ) -> list[dict[str, Any]]:
        """Write a batch; per-document errors come back as entries with ``error`` and ``reason``."""
        body: dict[str, Any] = {"docs": list(docs)}
        if not new_edits:
            body["new_edits"] = False
        result: list[dict[str, Any]] = await self.request("POST", f"/{_segment(db)}/_bulk_docs", json=body)
        return result

    async def bulk_get(
        self,
        db: str,
        docs: Sequence[Mapping[str, Any]],
        *,
        revs: bool = False,
        latest: bool = False,
        attachments: bool = False,
    ) -> list[dict[str, Any]]:
        params = {"revs": revs or None, "latest": latest or None, "attachments": attachments or None}
        result = await self.request(
            "POST", f"/{_segment(db)}/_bulk_get", params=params, json={"docs": list(docs)}
        )
        results: list[dict[str, Any]] = result["results"]
        return results

    async def all_docs(
        self, db: str, *, keys: Sequence[str] | None = None, params: Params | None = None
    ) -> dict[str, Any]:
        path = f"/{_segment(db)}/_all_docs"
        if keys is None:
            result: dict[str, Any] = await self.request("GET", path, params=params)
        else:
            result = await self.request("POST", path, params=params, json={"keys": list(keys)})
        return result

    async def revs_diff(self, db: str, revs: Mapping[str, Sequence[str]]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("POST", f"/{_segment(db)}/_revs_diff", json=revs)
        return result

    async def changes(
        self, db: str, params: Params, *, timeout: float | None = None, body: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """One page of ``_changes`` (normal or longpoll); ``since`` stays an opaque string.

        With ``body`` (``doc_ids`` or a ``selector``) the request is a POST, as CouchDB wants it.
        """
        method = "POST" if body is not None else "GET"
        result: dict[str, Any] = await self.request(
            method, f"/{_segment(db)}/_changes", params=params, json=body, timeout=timeout
        )
        return result
