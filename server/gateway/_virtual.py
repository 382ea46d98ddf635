"""One user's virtual database: the reference database plus the grid databases of their scope.

Reads fan out to the user's sources only, so a pull costs what the user's scope holds, never what
the whole store holds. Sequence tokens are the gateway's own (see ``_seq``).
"""

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from server.auth import Principal
from server.gateway._all_docs import keyed_rows, ranged_rows
from server.gateway._changes import ChangesQuery, DirectFilter, changes_page
from server.gateway._errors import GatewayError
from server.gateway._local import CouchLocalStore, LocalDocStore, LocalStore
from server.gateway._lookup import stored_docs
from server.gateway._params import int_param
from server.gateway._scope import Lane, Source, user_sources
from server.gateway._seq import CompositeSeqs, NativeSeqs, Positions, SeqCodec
from server.gateway._visibility import Visibility
from server.runtime import Runtime
from sync.link_budget import progress_of

__all__ = ["VirtualDatabase"]

COUCH_VERSION = "3.3.3"
_ALL_DOCS_PASSTHROUGH = (
    "include_docs",
    "conflicts",
    "attachments",
    "att_encoding_info",
    "descending",
    "startkey",
    "start_key",
    "endkey",
    "end_key",
    "key",
    "inclusive_end",
    "startkey_docid",
    "endkey_docid",
)


def _is_design(doc_id: str) -> bool:
    return doc_id.startswith("_design/")


def flag(params: Mapping[str, str], name: str) -> bool:
    return params.get(name, "false").lower() == "true"


class VirtualDatabase:
    """A database as one user sees it.

    Tablets see the virtual database: several sources, the gateway's own sequence tokens, design
    documents hidden and micro-grid scoping applied. Admins may also open one real database
    directly (``direct``): one source, CouchDB's own sequences, nothing hidden.
    """

    def __init__(
        self,
        name: str,
        runtime: Runtime,
        principal: Principal,
        sources: Sequence[Source],
        *,
        direct: bool = False,
    ) -> None:
        self.name = name
        self.runtime = runtime
        self.principal = principal
        self.sources = list(sources)
        self.direct = direct
        self.visibility = Visibility(principal, runtime.grids)
        self.seqs: SeqCodec = NativeSeqs(self.sources[0].key) if direct else CompositeSeqs()
        self.local: LocalStore = (
            CouchLocalStore(runtime.couch, name)
            if direct
            else LocalDocStore(runtime.sessions, principal.username, name)
        )
        self.couch = runtime.couch
        self.docs_read = 0
        """Documents this request made CouchDB hand over."""

    @classmethod
    def direct_view(cls, name: str, runtime: Runtime, principal: Principal) -> "VirtualDatabase":
        return cls(name, runtime, principal, [Source(name, name, None, Lane.DIRECT)], direct=True)

    @classmethod
    def user_view(cls, runtime: Runtime, principal: Principal) -> "VirtualDatabase":
        """The virtual database this user's tablets replicate with."""
        grids = runtime.grids
        sources = user_sources(principal, runtime.settings.couch, grids.grid_codes, grids.parent_of)
        return cls(runtime.settings.gateway.virtual_db, runtime, principal, sources)

    def count_read(self, documents: int) -> None:
        self.docs_read += documents
        self.runtime.metrics.docs_read += documents

    @property
    def source_dbs(self) -> list[str]:
        return [s.db for s in self.sources]

    def hidden(self, doc_id: str) -> bool:
        return _is_design(doc_id) and not self.principal.is_admin

    def visible(self, source: Source, doc: Mapping[str, Any] | None) -> bool:
        return self.visibility.visible(source.grid, doc)

    # -- database ---------------------------------------------------------------------------------

    async def positions_now(self, *, cached: bool = False) -> tuple[Positions, list[dict[str, Any]]]:
        """Where every source stands. ``cached`` accepts an answer up to a second old (see
        ``DbInfoCache``); ``since=now`` and ``update_seq`` on request ask CouchDB afresh."""
        read = self._cached_info if cached else self.couch.db_info
        infos = list(await asyncio.gather(*(read(s.db) for s in self.sources)))
        positions: Positions = {
            s.key: info.get("update_seq", 0) for s, info in zip(self.sources, infos, strict=True)
        }
        return positions, infos

    async def _cached_info(self, db: str) -> dict[str, Any]:
        cache = self.runtime.db_infos
        info = cache.get(db)
        if info is None:
            info = await self.couch.db_info(db)
            cache.put(db, info)
        return info

    async def info(self) -> dict[str, Any]:
        if self.direct:
            return await self.couch.db_info(self.sources[0].db)
        positions, infos = await self.positions_now(cached=True)
        return {
            "db_name": self.name,
            "update_seq": self.seqs.encode(positions),
            "doc_count": sum(int(i.get("doc_count", 0)) for i in infos),
            "doc_del_count": sum(int(i.get("doc_del_count", 0)) for i in infos),
            "purge_seq": 0,
            "compact_running": False,
            "instance_start_time": "0",
            "disk_format_version": 8,
            "sizes": {"file": 0, "external": 0, "active": 0},
            "props": {},
            "couchdb_version": COUCH_VERSION,
        }

    # -- changes ----------------------------------------------------------------------------------

    async def changes(
        self,
        params: Mapping[str, str],
        doc_ids: Sequence[str] | None = None,
        direct_filter: DirectFilter | None = None,
    ) -> dict[str, Any]:
        budget = 0
        if not self.direct and params.get("since") != "now":
            progress = progress_of(self.seqs.decode(params.get("since")))
            budget = self.runtime.link_budgets.budget_for(self.principal.username, progress)
        query = ChangesQuery.parse(params, doc_ids, budget, prefetch=not self.direct)
        return await changes_page(self, query, direct_filter)

    def checkpoint_written(self, body: Mapping[str, Any]) -> None:
        """A pull checkpoint names one of our tokens: the pages before it reached the client (a
        push checkpoint names the tablet's own sequence and is not ours to read)."""
        if self.direct:
            return
        try:
            positions = self.seqs.decode(body.get("last_seq"))
        except GatewayError:
            return
        self.runtime.link_budgets.delivered(self.principal.username, progress_of(positions))

    async def count_changes(self, since: str | None, *, cap: int) -> int:
        """How many changes this user would still download after ``since`` (at most ``cap``)."""
        counted = 0
        token: str | int | None = since
        while counted < cap:
            page_query = ChangesQuery(
                since=token,
                limit=min(1000, cap - counted),
                include_docs=False,
                passthrough={},
                doc_ids=None,
                byte_budget=0,
            )
            page = await changes_page(self, page_query)
            if not page["results"]:
                break
            counted += len(page["results"])
            token = page["last_seq"]
        return counted

    # -- replication ------------------------------------------------------------------------------

    async def revs_diff(self, body: Mapping[str, Sequence[str]]) -> dict[str, Any]:
        """A revision is missing when no source of the user has it. Only the source holding a
        document is asked about its revisions (the others have none of them); what the lookup
        found serves the ``_bulk_docs`` that PouchDB sends next (see ``stored_docs``). A document
        the user may not see answers as one that does not exist, all its revisions missing, or
        the answer would tell them it exists."""
        stored = {
            doc_id: home
            for doc_id, home in (await stored_docs(self.runtime, self.sources, list(body))).items()
            if not self.hidden(doc_id) and self.visible(*home)
        }
        held: dict[str, list[str]] = {}
        for doc_id, (source, _) in stored.items():
            held.setdefault(source.db, []).append(doc_id)
        diffs = dict(
            zip(
                held,
                await asyncio.gather(
                    *(self.couch.revs_diff(db, {i: body[i] for i in ids}) for db, ids in held.items())
                ),
                strict=True,
            )
        )
        result: dict[str, Any] = {}
        for doc_id, revs in body.items():
            home = stored.get(doc_id)
            if home is None:
                result[doc_id] = {"missing": list(revs)}
                continue
            entry = diffs[home[0].db].get(doc_id)
            if entry and entry.get("missing"):
                result[doc_id] = {"missing": [r for r in revs if r in set(entry["missing"])]}
                if entry.get("possible_ancestors"):
                    result[doc_id]["possible_ancestors"] = sorted(entry["possible_ancestors"])
        return result

    async def bulk_get(self, params: Mapping[str, str], docs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Each requested revision is answered by the source that has it: a first revision that a
        ``_changes`` page of this process listed lately from its own document, a document's
        remembered home alone, the others by every source."""
        homes = self.runtime.doc_homes
        by_db = {s.db: s for s in self.sources}
        chosen = self._listed_first_revisions(docs, by_db, params)
        groups: dict[str | None, list[int]] = {}
        for position, request in enumerate(docs):
            doc_id = str(request.get("id", ""))
            if self.hidden(doc_id) or position in chosen:
                continue
            home = homes.home(doc_id)
            groups.setdefault(home if home in by_db else None, []).append(position)
        # Unknown homes ask every source: a fresh document another gateway process saw in the
        # changes feed must be found, or PouchDB gives up the whole batch.
        calls = []
        for db, positions in groups.items():
            for source in [by_db[db]] if db is not None else self.sources:
                calls.append((source, positions))
        answers = await asyncio.gather(
            *(
                self.couch.bulk_get(
                    source.db,
                    [docs[i] for i in positions],
                    revs=flag(params, "revs"),
                    latest=flag(params, "latest"),
                    attachments=flag(params, "attachments"),
                )
                for source, positions in calls
            )
        )
        for (source, positions), answer in zip(calls, answers, strict=True):
            for position, entry in zip(positions, answer, strict=False):
                if position in chosen or entry.get("id") != docs[position].get("id"):
                    continue
                found = [d["ok"] for d in entry.get("docs", []) if "ok" in d]
                if not found:
                    continue
                self.count_read(len(found))
                homes.remember(str(entry["id"]), source.db)
                if all(self.visible(source, doc) for doc in found):
                    chosen[position] = entry
                else:
                    chosen[position] = _bulk_get_missing(docs[position])
        return {"results": [chosen.get(i) or _bulk_get_missing(request) for i, request in enumerate(docs)]}

    def _listed_first_revisions(
        self, docs: Sequence[Mapping[str, Any]], by_db: Mapping[str, Source], params: Mapping[str, str]
    ) -> dict[int, dict[str, Any]]:
        """``_bulk_get`` answers for the requested revisions that are first revisions of documents
        a ``_changes`` page listed lately with their bodies (see ``_changes``): a first revision's
        history is itself, and attachments are stubs there as in any ``_bulk_get`` without
        ``attachments``. If the document moved on since, the client meets the newer revision
        further down the feed."""
        if self.direct or flag(params, "attachments"):
            return {}
        listed, homes = self.runtime.listed_docs, self.runtime.doc_homes
        answers: dict[int, dict[str, Any]] = {}
        for position, request in enumerate(docs):
            doc_id, rev = request.get("id"), request.get("rev")
            if not isinstance(doc_id, str) or not isinstance(rev, str) or not rev.startswith("1-"):
                continue
            if self.hidden(doc_id):
                continue
            home = homes.home(doc_id)
            source = by_db.get(home) if home is not None else None
            if home is None or source is None:
                continue
            recalled = listed.recall([home], [doc_id])
            doc = recalled[doc_id].doc if recalled else None
            if doc is None or doc.get("_rev") != rev or not self.visible(source, doc):
                continue
            if flag(params, "revs"):
                doc = {**doc, "_revisions": {"start": 1, "ids": [rev.removeprefix("1-")]}}
            answers[position] = {"id": doc_id, "docs": [{"ok": doc}]}
        return answers

    async def all_docs(self, params: Mapping[str, str], keys: Sequence[str] | None) -> dict[str, Any]:
        """``_all_docs`` merged across sources, sorted by id as CouchDB sorts it (raw collation)."""
        query: dict[str, str | int | bool | None] = {
            k: params[k] for k in _ALL_DOCS_PASSTHROUGH if k in params
        }
        filtering = any(self.visibility.filters(s.grid) for s in self.sources)
        if filtering:
            query["include_docs"] = True
        skip = int_param(params, "skip") or 0
        limit = int_param(params, "limit")
        wants_docs = flag(params, "include_docs")
        descending = flag(params, "descending")

        def shown(source: Source, row: dict[str, Any]) -> dict[str, Any] | None:
            if "error" in row or self.hidden(str(row.get("id", ""))):
                return None
            if not self.visible(source, row.get("doc")):
                return None
            if not wants_docs:
                row = {k: v for k, v in row.items() if k != "doc"}
            return row

        if keys is not None:
            query.pop("descending", None)  # the order is the keys' own
            answers = await asyncio.gather(
                *(self.couch.all_docs(s.db, keys=keys, params=query) for s in self.sources)
            )
            rows = keyed_rows(keys, self.sources, answers, shown, descending=descending)
            total = sum(int(a.get("total_rows", 0)) for a in answers)
        else:
            needed = None if limit is None else skip + limit
            rows, total = await ranged_rows(
                self.couch, self.sources, query, shown, needed=needed, descending=descending
            )
        rows = rows[skip:] if limit is None else rows[skip : skip + limit]
        body: dict[str, Any] = {"total_rows": total, "offset": skip, "rows": rows}
        if flag(params, "update_seq"):
            body["update_seq"] = self.seqs.encode((await self.positions_now())[0])
        return body

    # -- documents --------------------------------------------------------------------------------

    async def home_of(self, doc_ids: Sequence[str]) -> dict[str, tuple[Source, dict[str, Any]]]:
        """For each existing id: the source holding it and its ``_all_docs`` row (deleted ones too)."""
        if not doc_ids:
            return {}
        answers = await asyncio.gather(*(self.couch.all_docs(s.db, keys=doc_ids) for s in self.sources))
        homes: dict[str, tuple[Source, dict[str, Any]]] = {}
        for source, answer in zip(self.sources, answers, strict=True):
            for row in answer.get("rows", []):
                if "error" not in row and row.get("id") not in homes:
                    homes[row["id"]] = (source, row)
        return homes

    async def source_of(self, doc_id: str) -> Source:
        if self.hidden(doc_id):
            raise GatewayError.not_found()
        remembered = self.runtime.doc_homes.home(doc_id)
        source = next((s for s in self.sources if s.db == remembered), None)
        if source is None:
            homes = await self.home_of([doc_id])
            if doc_id not in homes:
                raise GatewayError.not_found()
            source = homes[doc_id][0]
            self.runtime.doc_homes.remember(doc_id, source.db)
        if self.visibility.filters(source.grid):
            current = await self.couch.all_docs(source.db, keys=[doc_id], params={"include_docs": True})
            row = current["rows"][0]
            if not self.visible(source, row.get("doc")):
                raise GatewayError.not_found()
        return source


def _bulk_get_missing(request: Mapping[str, Any]) -> dict[str, Any]:
    doc_id = request.get("id")
    return {
        "id": doc_id,
        "docs": [
            {"error": {"id": doc_id, "rev": request.get("rev"), "error": "not_found", "reason": "missing"}}
        ],
    }
