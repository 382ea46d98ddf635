"""The taxonomy kept in SQL: read it, import the file into it, apply admin edits, audit every change.

Where edits persist: in SQL (``taxonomy_entries``), because several gateway processes and the
worker must agree on one taxonomy and a packaged file is not writable in production. The file
stays the way an office ships and reviews its taxonomy; importing it is a three-way merge per entry:

- an entry new to SQL is added;
- an entry whose file content changed since the last import takes the file's content (the latest
  deliberate change wins), otherwise SQL keeps any admin edit;
- an entry the file no longer lists is retired, never deleted (its code stays taken);
- the file may not give a used code a new meaning: if a code that the admin API added, or that is
  retired, comes back from the file under other names, the import is refused.
"""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from field_schema import FieldError, Taxonomy, TaxonomyDocument, TaxonomyError, load_taxonomy
from server.db.models import TaxonomyChange, TaxonomyEntry, TaxonomyRevision, utc_now

__all__ = [
    "KINDS",
    "EntryChange",
    "apply_changes",
    "entry_digest",
    "import_document",
    "latest_revision",
    "plan_import",
    "read_entries",
    "read_taxonomy",
    "recent_changes",
    "taxonomy_of",
]

KINDS = ("department", "category", "concern")
_LISTS = {"department": "departments", "category": "categories", "concern": "concerns"}
_DEFAULT_NOTE = (
    "可编辑的分类数据：代码一经使用不再复用 / Editable taxonomy: codes are never reused; "
    "retired entries stay listed with retired: true."
)


@dataclass(frozen=True)
class EntryChange:
    kind: str
    code: str
    action: str
    """added, edited, retired, reinstated, or adopted (the file now governs an unchanged entry)."""
    before: dict[str, Any] | None
    after: dict[str, Any]
    file_digest: str | None
    """The entry's new file digest (unchanged for admin edits)."""


def entry_digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


async def read_entries(session: AsyncSession) -> dict[tuple[str, str], TaxonomyEntry]:
    rows = (await session.exec(select(TaxonomyEntry))).all()
    return {(row.kind, row.code): row for row in rows}


async def latest_revision(session: AsyncSession) -> int:
    value = (await session.exec(select(func.max(TaxonomyRevision.revision)))).one()
    return int(value or 0)


def taxonomy_of(
    data: dict[tuple[str, str], dict[str, Any]], revision: int, note: str = _DEFAULT_NOTE
) -> Taxonomy:
    """Build and check the taxonomy from entries; ``TaxonomyError`` when they are inconsistent."""
    document: dict[str, Any] = {"version": 1, "revision": revision, "note": note}
    for kind in KINDS:
        document[_LISTS[kind]] = [data[key] for key in sorted(data) if key[0] == kind]
    return load_taxonomy(document)


async def read_taxonomy(session: AsyncSession) -> Taxonomy | None:
    """The taxonomy in SQL, or None when nothing was imported yet."""
    entries = await read_entries(session)
    if not entries:
        return None
    return taxonomy_of({key: dict(row.data) for key, row in entries.items()}, await latest_revision(session))


def _action(before: dict[str, Any] | None, after: dict[str, Any]) -> str:
    if before is None:
        return "added"
    was, now = bool(before.get("retired")), bool(after.get("retired"))
    if was != now:
        return "retired" if now else "reinstated"
    return "edited"


def plan_import(
    entries: dict[tuple[str, str], TaxonomyEntry], document: TaxonomyDocument
) -> list[EntryChange]:
    """What importing ``document`` changes; raises ``TaxonomyError`` when it would reuse a code."""
    changes: list[EntryChange] = []
    problems: list[FieldError] = []
    listed: set[tuple[str, str]] = set()
    for kind in KINDS:
        for index, entry in enumerate(getattr(document, _LISTS[kind])):
            key = (kind, entry.code)
            listed.add(key)
            data = entry.model_dump(mode="json")
            digest = entry_digest(data)
            row = entries.get(key)
            if row is None:
                changes.append(EntryChange(kind, entry.code, "added", None, data, digest))
                continue
            if row.file_digest == digest:
                continue  # the file did not change this entry: keep what SQL has (admin edits included)
            before = dict(row.data)
            foreign = row.file_digest is None or bool(before.get("retired"))
            renamed = (before.get("name_zh"), before.get("name_en")) != (data["name_zh"], data["name_en"])
            if foreign and renamed and not data.get("retired"):
                problems.append(
                    FieldError(
                        f"{_LISTS[kind]}.{index}.code",
                        f"代码 {entry.code} 已用于“{before.get('name_zh')}”，代码不可复用",
                        f"code {entry.code} already means {before.get('name_en')!r}; codes are never reused",
                    )
                )
                continue
            # Same content (e.g. an admin edit the file now agrees with): only the digest moves.
            action = _action(before, data) if before != data else "adopted"
            changes.append(EntryChange(kind, entry.code, action, before, data, digest))
    for key, row in sorted(entries.items()):
        if key in listed or row.file_digest is None:
            continue
        before = dict(row.data)
        after = {**before, "retired": True}
        # No longer governed by the file; listing it again later reinstates it (same names only).
        changes.append(EntryChange(key[0], key[1], _action(before, after), before, after, None))
    if problems:
        raise TaxonomyError(problems)
    return changes


async def apply_changes(
    session: AsyncSession,
    entries: dict[tuple[str, str], TaxonomyEntry],
    changes: Sequence[EntryChange],
    *,
    actor: str,
    source: str,
) -> Taxonomy:
    """Check the resulting taxonomy, then write the entries and one audited revision (no commit).

    Two concurrent writers compute the same next revision; the second one's flush fails on the
    revision's primary key, so the caller can answer "try again" instead of losing an edit.
    """
    data = {key: dict(row.data) for key, row in entries.items()}
    for change in changes:
        data[(change.kind, change.code)] = change.after
    audited = [c for c in changes if c.action != "adopted"]
    revision = await latest_revision(session) + (1 if audited else 0)
    taxonomy = taxonomy_of(data, revision)
    if audited:
        session.add(TaxonomyRevision(revision=revision, actor=actor, source=source))
        await session.flush()
    now = utc_now()
    for change in changes:
        row = entries.get((change.kind, change.code))
        if row is None:
            row = TaxonomyEntry(kind=change.kind, code=change.code, data=change.after, created_at=now)
        row.data = change.after
        row.file_digest = change.file_digest
        row.updated_at = now
        session.add(row)
        if change.action == "adopted":
            continue
        session.add(
            TaxonomyChange(
                revision=revision,
                kind=change.kind,
                code=change.code,
                action=change.action,
                before=change.before,
                after=change.after,
            )
        )
    await session.flush()
    return taxonomy


async def recent_changes(session: AsyncSession, limit: int) -> list[tuple[TaxonomyChange, TaxonomyRevision]]:
    rows = await session.exec(
        select(TaxonomyChange, TaxonomyRevision)
        .join(TaxonomyRevision, col(TaxonomyRevision.revision) == col(TaxonomyChange.revision))
        .order_by(col(TaxonomyChange.id).desc())
        .limit(limit)
    )
    return list(rows.all())


async def import_document(
    session: AsyncSession, document: TaxonomyDocument, *, actor: str
) -> tuple[Taxonomy, list[EntryChange]]:
    """Merge a taxonomy file into SQL (see the module docstring); the caller commits."""
    entries = await read_entries(session)
    changes = plan_import(entries, document)
    taxonomy = await apply_changes(session, entries, changes, actor=actor, source="file")
    return taxonomy, [c for c in changes if c.action != "adopted"]
