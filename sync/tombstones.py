"""Tombstones made bare: a deletion stored with the body it was written with is rewritten as a
deletion with no body.

The gateway has stored a volunteer's or a leader's deletion without its body since 2026-12-03: a
body on a tombstone skips every check a live document gets (validation, scope, photo checks) and
still reaches every tablet of the grid. Deletions stored before then, or written straight to
CouchDB, may still carry one. This pass finds them, leaves as leaves (the winning revision and
deleted conflict branches alike), and writes a bare tombstone on each as its child. CouchDB keeps
the old bodies in the revision history until the database is compacted, so by default the pass
compacts every database it changed.

It is safe to run while tablets sync and workers merge: each new tombstone is an ordinary edit of
a leaf (a tablet that edited the same leaf meanwhile wins, and that leaf is left for the next
run), the worker does not withdraw a withdrawn finding twice, and running it again changes
nothing.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sync.couch import CouchClient, CouchForbidden, CouchUnauthorized

__all__ = ["TombstoneReport", "bare", "bare_tombstones", "has_body"]

_BARE_KEYS = ("_id", "_rev", "_deleted", "_revisions")
PAGE = 500


def bare(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A deletion as it should be stored: what marks it deleted, no body."""
    return {key: doc[key] for key in _BARE_KEYS if key in doc}


def has_body(doc: Mapping[str, Any]) -> bool:
    """Whether a deleted revision carries anything beyond what marks it deleted."""
    return bool(doc.get("_deleted")) and any(key not in _BARE_KEYS for key in doc)


@dataclass
class TombstoneReport:
    db: str
    with_body: list[tuple[str, str]] = field(default_factory=list)
    """(id, rev) of each deleted leaf found with a body."""
    made_bare: int = 0
    left: list[str] = field(default_factory=list)
    """Ids of the documents CouchDB did not let us write on (edited meanwhile): the next run's."""
    compacted: bool = False
    compaction_refused: bool = False
    """The service account may not compact (it need not be a database admin): CouchDB 3 compacts
    on its own (smoosh), or an admin can."""

    def summary(self) -> str:
        """One line for the operator, Chinese first."""
        zh = [f"带正文的删除记录 {len(self.with_body)} 条，已改为空 {self.made_bare} 条"]
        en = [f"{len(self.with_body)} deletions with a body, {self.made_bare} made bare"]
        if self.compacted:
            zh.append("已压缩")
            en.append("compacted")
        if self.compaction_refused:
            zh.append("服务账号无权压缩，请由管理员压缩或等待 CouchDB 自动压缩")
            en.append("the service account may not compact: an admin can, or CouchDB compacts on its own")
        if self.left:
            zh.append(f"{len(self.left)} 条在处理时被修改，请再运行一次")
            en.append(f"{len(self.left)} edited meanwhile, run again: {', '.join(self.left)}")
        return f"{self.db}: {'，'.join(zh)} / {', '.join(en)}"


async def bare_tombstones(
    couch: CouchClient, db: str, *, write: bool = True, compact: bool = True, page: int = PAGE
) -> TombstoneReport:
    """Find the deleted leaves of ``db`` that carry a body and (``write``) give each a bare
    tombstone as its child; ``compact`` then drops the old bodies from the revision history."""
    report = TombstoneReport(db)
    since: str | int = 0
    while True:
        answer = await couch.changes(db, {"style": "all_docs", "limit": page, "since": since})
        rows: list[dict[str, Any]] = answer.get("results", [])
        if not rows:
            break
        found = await _bodied_leaves(couch, db, rows)
        report.with_body += found
        if write and found:
            await _write_bare(couch, db, found, report)
        since = answer["last_seq"]
        if len(rows) < page:
            break
    if write and compact and report.made_bare:
        try:
            await couch.compact(db)
            report.compacted = True
        except (CouchUnauthorized, CouchForbidden):
            report.compaction_refused = True
    return report


async def _bodied_leaves(
    couch: CouchClient, db: str, rows: Sequence[Mapping[str, Any]]
) -> list[tuple[str, str]]:
    """The deleted leaves with a body among a feed page's documents. Only a document whose winner is
    deleted, or that has several leaves (one of them may be a deleted branch), is read."""
    wanted = [
        {"id": str(row["id"]), "rev": str(change["rev"])}
        for row in rows
        if not str(row["id"]).startswith("_design/")
        and (row.get("deleted") or len(row.get("changes", [])) > 1)
        for change in row.get("changes", [])
    ]
    if not wanted:
        return []
    found: list[tuple[str, str]] = []
    for result in await couch.bulk_get(db, wanted):
        for entry in result.get("docs", []):
            doc = entry.get("ok")
            if isinstance(doc, dict) and has_body(doc):
                found.append((str(doc["_id"]), str(doc["_rev"])))
    return found


async def _write_bare(
    couch: CouchClient, db: str, leaves: Sequence[tuple[str, str]], report: TombstoneReport
) -> None:
    answers = await couch.bulk_docs(db, [{"_id": i, "_rev": r, "_deleted": True} for i, r in leaves])
    for answer in answers:
        if answer.get("error"):
            report.left.append(str(answer.get("id")))
        else:
            report.made_bare += 1
