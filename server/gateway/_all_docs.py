"""``_all_docs`` of a virtual database: its sources' rows merged in CouchDB's order, the rows a user
may not see (design documents, other micro-grids) left out *before* ``skip`` and ``limit`` count.
A client paging with ``limit`` must never lose a document behind a hidden one."""

import asyncio
import heapq
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec

from server.gateway._scope import Source
from sync.couch import CouchClient

__all__ = ["Shown", "keyed_rows", "ranged_rows"]

Shown = Callable[[Source, dict[str, Any]], dict[str, Any] | None]
"""A row as the user gets it, or None when they may not see it."""
Query = dict[str, str | int | bool | None]

_MARGIN = 20
"""Rows asked beyond those still needed, for the hidden ones among them."""


async def ranged_rows(
    couch: CouchClient,
    sources: Sequence[Source],
    query: Query,
    shown: Shown,
    *,
    needed: int | None,
    descending: bool,
) -> tuple[list[dict[str, Any]], int]:
    """The first ``needed`` visible rows of the range (all without ``needed``), and total_rows."""
    read = await asyncio.gather(*(_visible_rows(couch, s, query, shown, needed) for s in sources))
    merged = heapq.merge(*(rows for rows, _ in read), key=lambda r: str(r["id"]), reverse=descending)
    return list(merged), sum(total for _, total in read)


async def _visible_rows(
    couch: CouchClient, source: Source, query: Query, shown: Shown, needed: int | None
) -> tuple[list[dict[str, Any]], int]:
    request = dict(query)
    visible: list[dict[str, Any]] = []
    total = 0
    while True:
        page_size = None if needed is None else needed - len(visible) + _MARGIN
        request["limit"] = page_size
        answer = await couch.all_docs(source.db, params=request)
        rows: list[dict[str, Any]] = answer.get("rows", [])
        total = total or int(answer.get("total_rows", 0))
        visible.extend(r for r in (shown(source, row) for row in rows) if r is not None)
        if needed is None or page_size is None or len(rows) < page_size or len(visible) >= needed:
            break
        # the next page starts just after the last row read, in the same direction
        request.pop("start_key", None)
        request["startkey"] = msgspec.json.encode(rows[-1]["key"]).decode()
        request["skip"] = 1
    return (visible if needed is None else visible[:needed]), total


def keyed_rows(
    keys: Sequence[str],
    sources: Sequence[Source],
    answers: Sequence[Mapping[str, Any]],
    shown: Shown,
    *,
    descending: bool,
) -> list[dict[str, Any]]:
    """One row per key, in the keys' order (reversed when descending, as CouchDB does): the first
    source holding it visibly, else ``not_found``. Rows are matched by key, never by position."""
    by_key: list[dict[str, dict[str, Any]]] = []
    for answer in answers:
        found: dict[str, dict[str, Any]] = {}
        for row in answer.get("rows", []):
            if isinstance(row, dict) and isinstance(row.get("key"), str):
                found.setdefault(row["key"], row)
        by_key.append(found)
    rows: list[dict[str, Any]] = []
    for key in reversed(keys) if descending else keys:
        row = None
        for source, found in zip(sources, by_key, strict=True):
            candidate = found.get(key)
            if candidate is not None and (row := shown(source, candidate)) is not None:
                break
        rows.append(row or {"key": key, "error": "not_found"})
    return rows
