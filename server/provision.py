"""The prestart step: SQL schema, grids, taxonomy, CouchDB databases and reference documents, all
idempotent.

The web process never migrates; ``gridpatrol setup`` (and the demo) run this first.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import select

from field_schema import DEFAULT_TAXONOMY_FILE, Taxonomy, json_schemas, load_taxonomy
from geo import Area, AreaKind, load_areas
from server.auth import hash_password
from server.db import SessionMaker, make_engine, make_session_maker
from server.db.migrate import upgrade_to_head
from server.db.models import GridArea, Role, User, UserCreate, utc_now
from server.runtime import make_couch_client
from server.settings import Settings
from server.taxonomy import import_document, taxonomy_reference_doc
from sync.couch import CouchClient, CouchNotFound

__all__ = [
    "SetupReport",
    "ensure_couch_databases",
    "grid_codes_of",
    "import_taxonomy",
    "load_grids",
    "migrate",
    "publish_reference",
    "reference_docs",
    "setup",
    "upsert_user",
]


def migrate(settings: Settings) -> None:
    upgrade_to_head(settings)


async def load_grids(sessions: SessionMaker, areas: Sequence[Area]) -> None:
    """Upsert grids and micro-grids into SQL (codes are stable; geometry and names may change)."""
    async with sessions() as session:
        existing = {row.code: row for row in (await session.exec(select(GridArea))).all()}
        for area in areas:
            feature = area.to_feature()
            row = existing.get(area.code) or GridArea(
                code=area.code, kind=str(area.kind), name_zh="", name_en="", geometry={}
            )
            row.kind = str(area.kind)
            row.parent = area.parent
            row.name_zh = area.name_zh
            row.name_en = area.name_en
            row.geometry = feature["geometry"]
            row.updated_at = utc_now()
            session.add(row)
        await session.commit()


async def ensure_couch_databases(
    couch: CouchClient, settings: Settings, grid_codes: Sequence[str]
) -> list[str]:
    """Create the reference database and, per grid, its own and its alerts database, readable by our
    service account only."""
    names = [settings.couch.reference_db]
    for code in grid_codes:
        names += [settings.couch.alert_db(code), settings.couch.grid_db(code)]
    for name in names:
        await couch.create_db(name)
        await couch.put_security(
            name,
            {
                "admins": {"names": [], "roles": []},
                "members": {"names": [settings.couch.username], "roles": ["_admin"]},
            },
        )
    return names


def reference_docs(areas: Sequence[Area], taxonomy: Taxonomy) -> list[dict[str, Any]]:
    """Shared documents every tablet pulls: grid outlines, the taxonomy and the document schemas."""
    docs: list[dict[str, Any]] = [
        {
            "_id": f"grid:{area.code}",
            "type": "grid_outline",
            "schema_version": 1,
            "code": area.code,
            "kind": str(area.kind),
            "parent": area.parent,
            "name_zh": area.name_zh,
            "name_en": area.name_en,
            "geometry": area.to_feature()["geometry"],
        }
        for area in areas
    ]
    docs.append(taxonomy_reference_doc(taxonomy))
    docs.append(
        {
            "_id": "schemas",
            "type": "document_schemas",
            "schema_version": 1,
            "schemas": {
                name: {str(v): s for v, s in versions.items()} for name, versions in json_schemas().items()
            },
        }
    )
    return docs


async def publish_reference(couch: CouchClient, settings: Settings, docs: Sequence[dict[str, Any]]) -> int:
    """Write reference documents whose content changed; returns how many were written."""
    db = settings.couch.reference_db
    written = 0
    for doc in docs:
        try:
            current = await couch.get_doc(db, doc["_id"])
        except CouchNotFound:
            current = None
        if current is not None and {k: v for k, v in current.items() if k != "_rev"} == doc:
            continue
        body = dict(doc)
        if current is not None:
            body["_rev"] = current["_rev"]
        await couch.put_doc(db, body)
        written += 1
    return written


SETUP_ACTOR = "system:setup"


async def import_taxonomy(sessions: SessionMaker, taxonomy: Taxonomy, actor: str = SETUP_ACTOR) -> Taxonomy:
    """Merge a taxonomy (as read from its file) into SQL; returns the taxonomy now in force.

    Admin edits the file does not contradict survive; see ``server.taxonomy._store``.
    """
    async with sessions() as session:
        current, _ = await import_document(session, taxonomy.document(), actor=actor)
        await session.commit()
    return current


async def upsert_user(sessions: SessionMaker, user: UserCreate) -> User:
    """Create the user, or update role, scope and password of an existing one."""
    async with sessions() as session:
        row = (await session.exec(select(User).where(User.username == user.username))).first()
        if row is None:
            row = User(
                username=user.username,
                display_name=user.display_name,
                role=Role(user.role),
                grids=list(user.grids),
                department=user.department,
                password_hash=hash_password(user.password),
            )
        else:
            row.display_name = user.display_name
            row.role = Role(user.role)
            row.grids = list(user.grids)
            row.department = user.department
            row.password_hash = hash_password(user.password)
            row.is_active = True
        session.add(row)
        await session.commit()
        await session.refresh(row)
        return row


def grid_codes_of(areas: Sequence[Area]) -> list[str]:
    return sorted(a.code for a in areas if a.kind is AreaKind.GRID)


@dataclass(frozen=True)
class SetupReport:
    grids: int
    micro_grids: int
    databases: list[str]
    reference_written: int
    taxonomy_revision: int


async def setup(settings: Settings, grid_file: Path, taxonomy: Taxonomy | None = None) -> SetupReport:
    """Migrate SQL, load the grid file, import the taxonomy (``GRIDPATROL_TAXONOMY_FILE`` unless one
    is given), create CouchDB databases and publish reference documents."""
    areas = load_areas(grid_file)
    source = taxonomy or load_taxonomy(settings.taxonomy_file or DEFAULT_TAXONOMY_FILE)
    await asyncio.to_thread(migrate, settings)
    engine = make_engine(settings.database)
    try:
        sessions = make_session_maker(engine)
        await load_grids(sessions, areas)
        current = await import_taxonomy(sessions, source)
    finally:
        await engine.dispose()
    async with make_couch_client(settings) as couch:
        databases = await ensure_couch_databases(couch, settings, grid_codes_of(areas))
        written = await publish_reference(couch, settings, reference_docs(areas, current))
    return SetupReport(
        grids=sum(1 for a in areas if a.kind is AreaKind.GRID),
        micro_grids=sum(1 for a in areas if a.kind is AreaKind.MICRO_GRID),
        databases=databases,
        reference_written=written,
        taxonomy_revision=current.revision,
    )
