"""CouchDB URL paths, split from the raw path so that ``%2F`` in names survives routing."""

from dataclasses import dataclass
from urllib.parse import unquote

from server.gateway._errors import GatewayError

__all__ = ["CouchPath", "parse_couch_path"]


@dataclass(frozen=True)
class CouchPath:
    """``/{db}/{doc or _endpoint}/{attachment...}`` with every segment percent-decoded."""

    db: str | None = None
    endpoint: str | None = None
    """A database-level ``_something`` (``_changes``, ``_bulk_docs``...), when the path names one."""
    doc_id: str | None = None
    attachment: str | None = None

    @property
    def is_root(self) -> bool:
        return self.db is None


_DOC_PREFIXES = ("_design", "_local")


def parse_couch_path(raw_path: bytes, prefix: str) -> CouchPath:
    text = raw_path.decode("latin-1")
    if not text.startswith(prefix):
        raise GatewayError.not_found()
    rest = text[len(prefix) :].lstrip("/")
    if rest.endswith("/") and rest.count("/") == 1:
        rest = rest[:-1]  # "/db/" is the database itself
    if not rest:
        return CouchPath()
    raw_segments = rest.split("/")
    try:
        segments = [unquote(s, encoding="utf-8", errors="strict") for s in raw_segments]
    except UnicodeDecodeError as exc:
        raise GatewayError.bad_request("路径编码无效", "Invalid percent-encoding in path") from exc
    db, tail = segments[0], segments[1:]
    if not tail:
        return CouchPath(db=db)
    head = tail[0]
    if head in _DOC_PREFIXES and len(tail) >= 2:
        doc_id = f"{head}/{tail[1]}"
        attachment = "/".join(tail[2:]) or None
        return CouchPath(db=db, doc_id=doc_id, attachment=attachment)
    if head.startswith("_"):
        if len(tail) > 1:
            # e.g. _design docs' views: keep the remainder as the attachment slot for the caller
            return CouchPath(db=db, endpoint=head, attachment="/".join(tail[1:]))
        return CouchPath(db=db, endpoint=head)
    return CouchPath(db=db, doc_id=head, attachment="/".join(tail[1:]) or None)
