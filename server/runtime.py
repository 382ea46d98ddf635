"""Everything a running process holds open: SQL engine, CouchDB client, grid index, taxonomy.

One Runtime per process, built in the app's lifespan (or by the worker); importing this module
opens nothing.
"""

import logging
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from shapely.geometry import shape
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from field_schema import DEFAULT_TAXONOMY_FILE, Taxonomy, load_taxonomy
from geo import Area, AreaKind, GridIndex
from server.auth import Authenticator, TokenSigner
from server.db import SessionMaker, make_engine, make_session_maker
from server.db.models import GridArea
from server.settings import Settings
from sync.couch import DEFAULT_LIMITS, CouchClient
from sync.db_infos import DbInfoCache
from sync.homes import DocHomes
from sync.id_catalog import IdCatalog
from sync.link_budget import LinkBudgets
from sync.notifier import ChangeNotifier
from sync.recent_docs import RecentDocs

__all__ = ["GridState", "Metrics", "Runtime", "load_grid_state", "make_couch_client"]

log = logging.getLogger("gridpatrol.runtime")
_GRID_RETRY_S = 5.0
_TAXONOMY_CHECK_S = 10.0  # how stale another process's taxonomy edit may be here


@dataclass
class Metrics:
    """Counters of this process, read by ``/api/metrics``."""

    docs_read: int = 0
    """Documents the gateway made CouchDB hand over (bodies read in the store)."""


@dataclass(frozen=True)
class GridState:
    index: GridIndex | None
    loaded: bool = True
    """False when SQL was unreachable at load time (retried by ``Runtime.refresh``)."""
    grid_codes: tuple[str, ...] = ()
    parent_of: dict[str, str] = field(default_factory=dict)
    """Micro-grid code → grid code."""

    def within(self, code: str, scope: Collection[str]) -> bool:
        """Whether ``code`` lies in a scope: it is one of the scope's grids or micro-grids, or a
        micro-grid of one of its grids."""
        return code in scope or self.parent_of.get(code) in scope


def make_couch_client(settings: Settings, *, max_connections: int | None = None) -> CouchClient:
    """A CouchDB client as the service account; ``max_connections`` sizes its pool (the
    worker's longpolls get a pool of their own)."""
    limits = (
        httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        if max_connections
        else DEFAULT_LIMITS
    )
    return CouchClient(
        settings.couch.url,
        settings.couch.username,
        settings.couch.password,
        timeout=httpx.Timeout(settings.couch.timeout_s, connect=5.0),
        limits=limits,
    )


async def load_grid_state(sessions: SessionMaker) -> GridState:
    async with sessions() as session:
        rows = (await session.exec(select(GridArea))).all()
    if not rows:
        return GridState(index=None)
    areas = [
        Area(
            code=row.code,
            name_zh=row.name_zh,
            name_en=row.name_en,
            kind=AreaKind(row.kind),
            geometry=shape(row.geometry),
            parent=row.parent,
        )
        for row in rows
    ]
    return GridState(
        index=GridIndex(areas),
        grid_codes=tuple(sorted(a.code for a in areas if a.kind is AreaKind.GRID)),
        parent_of={a.code: a.parent for a in areas if a.kind is AreaKind.MICRO_GRID and a.parent},
    )


LISTED_TTL_S = 30.0
"""How long a page's documents serve its ``_bulk_get``. PouchDB asks for up to ten pages ahead and
fetches their documents one page at a time, seconds later on a slow link. An answer is only ever
the exact first revision asked for, which no later write changes, so age costs memory, not truth;
kept apart from ``recent_docs``, whose lookups must be a second old at most."""


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: SessionMaker
    couch: CouchClient
    authenticator: Authenticator
    taxonomy: Taxonomy
    """Replaced as a whole (never mutated) when an admin edits the taxonomy or it is reloaded."""
    grids: GridState
    _grids_tried_at: float = 0.0
    _notifier: ChangeNotifier | None = None
    _backend: str | None = None
    _link_budgets: LinkBudgets | None = None
    doc_homes: DocHomes = field(default_factory=DocHomes)
    """Which database each recently seen document lives in (see the gateway's bulk_get)."""
    db_infos: DbInfoCache = field(default_factory=DbInfoCache)
    id_catalog: IdCatalog = field(default_factory=IdCatalog)
    """Ids of the reference and alerts databases (see the gateway's push and pull)."""
    recent_docs: RecentDocs = field(default_factory=RecentDocs)
    """Stored revisions ``_revs_diff`` looked up, for the ``_bulk_docs`` that follows it."""
    listed_docs: RecentDocs = field(default_factory=lambda: RecentDocs(ttl_s=LISTED_TTL_S, capacity=10_000))
    """Documents users' ``_changes`` pages listed, for the ``_bulk_get`` of their first revisions."""
    metrics: Metrics = field(default_factory=Metrics)
    _taxonomy_checked_at: float = 0.0

    @classmethod
    async def open(cls, settings: Settings) -> "Runtime":
        engine = make_engine(settings.database)
        sessions = make_session_maker(engine)
        signer = TokenSigner(settings.auth.secret_key, settings.auth.token_ttl_s)
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            couch=make_couch_client(settings),
            authenticator=Authenticator(sessions, signer, settings.auth.credential_cache_s),
            taxonomy=await _try_load_taxonomy(sessions, settings.taxonomy_file or DEFAULT_TAXONOMY_FILE),
            grids=await _try_load_grids(sessions),
            _grids_tried_at=time.monotonic(),
            _taxonomy_checked_at=time.monotonic(),
        )

    @property
    def taxonomy_file(self) -> Path:
        return self.settings.taxonomy_file or DEFAULT_TAXONOMY_FILE

    async def reload_grids(self) -> None:
        self.grids = await load_grid_state(self.sessions)

    async def refresh(self) -> None:
        """Called before work: pick up taxonomy edits made through another process, and retry
        loading grids that SQL could not give at start-up (each at most every few seconds)."""
        await self.ensure_taxonomy()
        if self.grids.loaded or time.monotonic() - self._grids_tried_at < _GRID_RETRY_S:
            return
        self._grids_tried_at = time.monotonic()
        self.grids = await _try_load_grids(self.sessions)

    async def backend(self) -> str:
        """``couchdb`` (Apache CouchDB) or ``pouchdb-server``: a few requests must never reach the
        latter (``filter=_selector`` kills it), so the gateway asks which one it talks to."""
        if self._backend is None:
            info = await self.couch.server_info()
            self._backend = "pouchdb-server" if "express-pouchdb" in info else "couchdb"
        return self._backend

    @property
    def link_budgets(self) -> LinkBudgets:
        """Per-user ``_changes`` byte budgets learnt from how their pulls go (see the gateway)."""
        if self._link_budgets is None:
            self._link_budgets = LinkBudgets(self.settings.gateway.changes_byte_budget)
        return self._link_budgets

    def notifier(self) -> ChangeNotifier:
        """The change notifier for longpoll clients, with its own CouchDB connections (created on use)."""
        if self._notifier is None:
            self._notifier = ChangeNotifier(make_couch_client(self.settings))
        return self._notifier

    async def reload_taxonomy(self) -> None:
        """Read the taxonomy from SQL again (the file is only read when SQL holds none)."""
        self.taxonomy = await _try_load_taxonomy(self.sessions, self.taxonomy_file, fallback=self.taxonomy)

    async def ensure_taxonomy(self) -> None:
        """Reload the taxonomy when SQL has a newer revision than ours (at most every few seconds)."""
        if time.monotonic() - self._taxonomy_checked_at < _TAXONOMY_CHECK_S:
            return
        self._taxonomy_checked_at = time.monotonic()
        from server.taxonomy import latest_revision  # noqa: PLC0415  (server.taxonomy imports this module)

        try:
            async with self.sessions() as session:
                revision = await latest_revision(session)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("taxonomy revision not checked (SQL unreachable?): %s", exc)
            return
        if revision != self.taxonomy.revision:
            await self.reload_taxonomy()

    async def close(self) -> None:
        if self._notifier is not None:
            await self._notifier.close()
        await self.couch.aclose()
        await self.engine.dispose()


async def _try_load_taxonomy(
    sessions: SessionMaker, taxonomy_file: Path, fallback: Taxonomy | None = None
) -> Taxonomy:
    """The taxonomy in SQL; the file when SQL holds none yet (or is unreachable at start-up)."""
    from server.taxonomy import read_taxonomy  # noqa: PLC0415  (server.taxonomy imports this module)

    try:
        async with sessions() as session:
            stored = await read_taxonomy(session)
    except (SQLAlchemyError, OSError) as exc:
        log.warning("taxonomy read from %s (SQL unreachable?): %s", taxonomy_file, exc)
        stored = None
    if stored is not None:
        return stored
    return fallback or load_taxonomy(taxonomy_file)


async def _try_load_grids(sessions: SessionMaker) -> GridState:
    try:
        return await load_grid_state(sessions)
    except (SQLAlchemyError, OSError) as exc:
        log.warning("grids not loaded (SQL unreachable?): %s", exc)
        return GridState(index=None, loaded=False)
