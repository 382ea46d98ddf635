"""One ``_changes`` page, built over a view's sources.

Two rules make pulls over bad links work with unmodified PouchDB:

* A page never looks like the end of the feed before it is: PouchDB stops at the first page with
  no results, so rows we hide (design documents, other micro-grids) never leave a page empty while
  a source still has rows.
* A micro-grid user is listed a conflicted document's winning revision and those of its losing
  branches whose body they may see (``_add_visible_branches``), never a branch ``_bulk_get`` would
  then refuse.
* A page stops early once the documents and photos behind it pass a byte budget. PouchDB only
  moves its checkpoint when a whole page (batch) is stored, so a page that cannot cross a link
  between two cuts would be fetched again and again. ``last_seq`` stays honest, so the client just
  asks for the next page.

A user's page is read with its documents, and the live ones are kept (``Runtime.listed_docs``):
the ``_bulk_get`` PouchDB sends next for the page's first revisions is answered from them
(``VirtualDatabase.bulk_get``), one CouchDB request per page instead of two.
"""

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from server.gateway._errors import GatewayError
from server.gateway._scope import Lane, Source
from server.gateway._seq import Positions
from sync.recent_docs import StoredDoc

if TYPE_CHECKING:
    from server.gateway._virtual import VirtualDatabase

__all__ = ["ChangesQuery", "DirectFilter", "changes_page", "transfer_cost"]

_UNBOUNDED_PAGE = 1000
_CATALOGUED = frozenset({Lane.ALERT, Lane.REFERENCE})
"""Small databases whose feed position the id catalog knows (a longpoll that hears one of them
move expires its entry, so a live pull reads a fresh alert at once)."""
_PASSTHROUGH = ("style", "include_docs", "conflicts", "attachments", "att_encoding_info")
_RESHAPING = ("conflicts", "attachments", "att_encoding_info")
_encoder = msgspec.json.Encoder()


def transfer_cost(doc: Mapping[str, Any] | None) -> int:
    """Bytes a client will fetch for this change: the body, plus every attachment's length."""
    if doc is None:
        return 64
    attachments = doc.get("_attachments") or {}
    body = {k: v for k, v in doc.items() if k != "_attachments"}
    size = len(_encoder.encode(body))
    for att in attachments.values():
        if isinstance(att, Mapping):
            size += int(att.get("length") or 0) + 200
    return size


@dataclass(frozen=True)
class DirectFilter:
    """A filter an admin asked for on a real database, already checked, sent to CouchDB as is."""

    params: dict[str, str]
    body: dict[str, Any] | None = None


@dataclass(frozen=True)
class ChangesQuery:
    since: str | int | None
    limit: int | None
    include_docs: bool
    passthrough: dict[str, str]
    doc_ids: frozenset[str] | None
    byte_budget: int
    prefetch: bool = False
    """Read the documents with the page and keep them for the ``_bulk_get`` that follows (a
    client's pull; not a count of pending changes)."""

    @classmethod
    def parse(
        cls,
        params: Mapping[str, str],
        doc_ids: Sequence[str] | None,
        byte_budget: int,
        *,
        prefetch: bool = False,
    ) -> "ChangesQuery":
        try:
            limit = int(params["limit"]) if params.get("limit") else None
        except ValueError as exc:
            raise GatewayError.bad_request("limit 必须是整数", "limit must be an integer") from exc
        if params.get("descending", "false").lower() != "false":
            # the feed is several databases' feeds one after the other: newest first has no meaning
            # a client could page with, and answering oldest first would be silently wrong
            raise GatewayError.bad_request(
                "此数据库的变更不支持 descending", "descending is not supported on this database's changes"
            )
        return cls(
            since=params.get("since"),
            limit=max(1, limit) if limit is not None else None,
            include_docs=params.get("include_docs", "false").lower() == "true",
            passthrough={k: params[k] for k in _PASSTHROUGH if k in params},
            doc_ids=frozenset(doc_ids) if doc_ids is not None else None,
            byte_budget=byte_budget,
            # documents read with options that change their shape are not what _bulk_get returns
            prefetch=prefetch and not any(k in params for k in _RESHAPING),
        )


async def changes_page(
    view: "VirtualDatabase", query: ChangesQuery, direct_filter: DirectFilter | None = None
) -> dict[str, Any]:
    """A normal ``_changes`` page over the view's sources, in source order.

    ``direct_filter`` (admins on a real database only) is passed to CouchDB as is, after the
    caller checked that the filter or view exists.
    """
    positions = (await view.positions_now())[0] if query.since == "now" else view.seqs.decode(query.since)
    limit = query.limit
    results: list[dict[str, Any]] = []
    pending: dict[str, int] = {}
    spent = 0
    over_budget = False
    for source in await _sources_to_read(view, positions):
        needs_docs = (
            query.include_docs
            or query.prefetch
            or view.visibility.filters(source.grid)
            or query.byte_budget > 0
        )
        request: dict[str, str | int | bool | None] = {
            **query.passthrough,
            **(direct_filter.params if direct_filter is not None else {}),
        }
        if needs_docs:
            request["include_docs"] = True
        drained = False
        while not drained and not over_budget and (limit is None or len(results) < limit):
            page_size = _UNBOUNDED_PAGE if limit is None else limit - len(results)
            request["since"] = positions.get(source.key, 0)
            request["limit"] = page_size
            page = await view.couch.changes(
                source.db, request, body=direct_filter.body if direct_filter is not None else None
            )
            rows = page.get("results", [])
            if needs_docs:
                view.count_read(len(rows))
            listed: list[Any] = []
            branched: list[tuple[dict[str, Any], list[str]]] = []
            for row in rows:
                before = positions.get(source.key, 0)
                positions[source.key] = row["seq"]
                if not _shown(view, source, row, query):
                    continue
                if query.byte_budget:
                    cost = transfer_cost(row.get("doc"))
                    if results and spent + cost > query.byte_budget:
                        positions[source.key] = before  # this row opens the next page
                        over_budget = True
                        break
                    spent += cost
                listed.append(row.get("doc"))
                results.append(_listed_row(view, source, row, view.seqs.encode(positions), query, branched))
            spent += await _add_visible_branches(view, source, branched)
            if query.prefetch:
                _keep_listed(view, source, listed)
            if over_budget:
                pending[source.key] = int(page.get("pending", 0) or 0) + 1
                break
            drained = len(rows) < page_size
            if drained:
                positions[source.key] = page.get("last_seq", positions.get(source.key, 0))
            pending[source.key] = 0 if drained else int(page.get("pending", 0) or 0)
        if over_budget or (limit is not None and len(results) >= limit):
            break
    return {"results": results, "last_seq": view.seqs.encode(positions), "pending": sum(pending.values())}


def _shown(view: "VirtualDatabase", source: Source, row: Mapping[str, Any], query: ChangesQuery) -> bool:
    if view.hidden(row["id"]) or (query.doc_ids is not None and row["id"] not in query.doc_ids):
        return False
    return view.visible(source, row.get("doc"))


def _listed_row(
    view: "VirtualDatabase",
    source: Source,
    row: Mapping[str, Any],
    seq: str | int,
    query: ChangesQuery,
    branched: list[tuple[dict[str, Any], list[str]]],
) -> dict[str, Any]:
    """The row as the client sees it. A conflicted row whose losing branches must be checked first
    lists its winner only and joins ``branched``."""
    view.runtime.doc_homes.remember(str(row["id"]), source.db)
    shown = {**row, "seq": seq}
    losing = _losing_revs(view, source, row)
    if losing:
        shown["changes"] = [{"rev": row["doc"]["_rev"]}]
        branched.append((shown, losing))
    if not query.include_docs:
        shown.pop("doc", None)
    return shown


def _losing_revs(view: "VirtualDatabase", source: Source, row: Mapping[str, Any]) -> list[str]:
    """The losing leaves of a conflicted document listed to a micro-grid user, to be checked one by
    one: a losing branch may lie in a micro-grid they cannot see, and a listed revision that
    ``_bulk_get`` then refuses stops PouchDB's pull for good."""
    doc = row.get("doc")
    if not view.visibility.filters(source.grid) or len(row.get("changes") or ()) < 2:
        return []
    if not isinstance(doc, Mapping) or "_rev" not in doc:
        return []
    return [str(c["rev"]) for c in row["changes"] if c.get("rev") != doc["_rev"]]


async def _add_visible_branches(
    view: "VirtualDatabase", source: Source, branched: Sequence[tuple[dict[str, Any], list[str]]]
) -> int:
    """List beside each winner the losing branches whose body the user may see (deleted branches
    are visible, as every tombstone is), read in one request for the page. Returns what they add
    to the page's transfer, counted against the byte budget of the rows still to come."""
    if not branched:
        return 0
    asked = [{"id": row["id"], "rev": rev} for row, losing in branched for rev in losing]
    answers = await view.couch.bulk_get(source.db, asked)
    view.count_read(len(asked))
    visible: dict[str, list[str]] = {}
    cost = 0
    for answer in answers:
        for entry in answer.get("docs") or ():
            body = entry.get("ok") if isinstance(entry, Mapping) else None
            if isinstance(body, Mapping) and "_rev" in body and view.visible(source, body):
                visible.setdefault(str(answer.get("id")), []).append(str(body["_rev"]))
                cost += transfer_cost(body)
    for row, losing in branched:
        shown = set(visible.get(str(row["id"]), ()))
        row["changes"] += [{"rev": rev} for rev in losing if rev in shown]
    return cost


def _keep_listed(view: "VirtualDatabase", source: Source, docs: Sequence[Any]) -> None:
    """The live documents a user's page listed, for the ``_bulk_get`` that follows it."""
    listed = {
        str(doc["_id"]): StoredDoc(source.db, doc)
        for doc in docs
        if isinstance(doc, dict) and "_id" in doc and not doc.get("_deleted")
    }
    if listed:
        view.runtime.listed_docs.remember([source.db], listed)


async def _sources_to_read(view: "VirtualDatabase", positions: Positions) -> list[Source]:
    """The view's sources, less the small databases (reference, alerts) whose feed stood at the
    client's position at the catalog's last look, a moment ago: they have nothing new to read."""
    small = [s for s in view.sources if s.lane in _CATALOGUED]
    catalog = view.runtime.id_catalog
    entries = await asyncio.gather(*(catalog.entry(view.couch, s.db) for s in small))
    unchanged = {
        s.key
        for s, entry in zip(small, entries, strict=True)
        if entry and entry.seq == positions.get(s.key, 0)
    }
    return [s for s in view.sources if s.key not in unchanged]
