"""Settings, read from the environment once.

Every field names its environment variable. ``get_settings()`` is the only accessor used by the
running system; tests and the demo supervisor build ``Settings.from_env(environ)`` explicitly.
"""

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

__all__ = [
    "AuthSettings",
    "CouchSettings",
    "DatabaseSettings",
    "GatewaySettings",
    "Settings",
    "SettingsError",
    "WorkerSettings",
    "get_settings",
]

PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "dev-secret"})
DEVELOPMENT_ENVIRONMENTS = frozenset({"development", "test"})


class SettingsError(RuntimeError):
    """The environment does not describe a runnable configuration."""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from exc


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from exc


def _list(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = env.get(name)
    if raw is None:
        return default
    return tuple(item.strip() for item in raw.split(",") if item.strip())


@dataclass(frozen=True)
class DatabaseSettings:
    """SQL store for case records, users, checkpoints and refusals."""

    url: str
    """GRIDPATROL_DATABASE_URL: ``sqlite:///path`` (default) or ``postgresql+psycopg://...``."""
    echo: bool = False
    """GRIDPATROL_DATABASE_ECHO: log every SQL statement."""

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``: the SQLAlchemy dialect name."""
        return "sqlite" if self.is_sqlite else "postgresql"

    @property
    def sync_url(self) -> str:
        """URL for synchronous engines (Alembic)."""
        if self.url.startswith("sqlite+aiosqlite"):
            return "sqlite" + self.url.removeprefix("sqlite+aiosqlite")
        return self.url

    @property
    def async_url(self) -> str:
        """URL for the asyncio engine used by the gateway, API and worker."""
        if self.url.startswith("sqlite:"):
            return "sqlite+aiosqlite:" + self.url.removeprefix("sqlite:")
        if self.url.startswith("postgresql://"):
            return "postgresql+psycopg://" + self.url.removeprefix("postgresql://")
        return self.url


@dataclass(frozen=True)
class CouchSettings:
    """The CouchDB-compatible store holding field documents."""

    url: str
    """GRIDPATROL_COUCH_URL: base URL of CouchDB, without credentials."""
    username: str
    """GRIDPATROL_COUCH_USER: service account the gateway and worker use; never shown to clients."""
    password: str = field(repr=False)
    """GRIDPATROL_COUCH_PASSWORD: its password."""
    db_prefix: str = "gp_"
    """GRIDPATROL_COUCH_DB_PREFIX: prefix of every database we create (one per grid, plus reference)."""
    timeout_s: float = 30.0
    """GRIDPATROL_COUCH_TIMEOUT: seconds before a CouchDB request is abandoned."""

    def grid_db(self, grid_code: str) -> str:
        return f"{self.db_prefix}grid_{grid_code.lower()}"

    def alert_db(self, grid_code: str) -> str:
        """Urgent findings and missing-person alerts of a grid: every pull and the worker read it first."""
        return f"{self.db_prefix}alerts_{grid_code.lower()}"

    @property
    def reference_db(self) -> str:
        return f"{self.db_prefix}reference"


@dataclass(frozen=True)
class AuthSettings:
    """Passwords and tokens."""

    secret_key: str = field(repr=False)
    """GRIDPATROL_SECRET_KEY: signs bearer tokens and session cookies. Required outside development."""
    token_ttl_s: int = 12 * 3600
    """GRIDPATROL_TOKEN_TTL: lifetime of bearer tokens and sessions, in seconds."""
    credential_cache_s: int = 300
    """GRIDPATROL_CREDENTIAL_CACHE: how long a verified Basic password is remembered (argon2 is slow)."""


@dataclass(frozen=True)
class GatewaySettings:
    """The sync gateway."""

    server_uuid: str
    """GRIDPATROL_SERVER_UUID: stable uuid announced at ``GET /sync/`` (PouchDB keys checkpoints on it)."""
    max_body_bytes: int = 256 * 1024 * 1024
    """GRIDPATROL_MAX_BODY_BYTES: largest request body on the sync routes (batches of photos)."""
    max_attachment_bytes: int = 10 * 1024 * 1024
    """GRIDPATROL_MAX_ATTACHMENT_BYTES: largest single photo."""
    cors_origins: tuple[str, ...] = ()
    """GRIDPATROL_CORS_ORIGINS: comma-separated browser origins allowed with credentials."""
    virtual_db: str = "field"
    """GRIDPATROL_VIRTUAL_DB: name of the per-user database tablets replicate with."""
    changes_byte_budget: int = 256 * 1024
    """GRIDPATROL_CHANGES_BYTE_BUDGET: a ``_changes`` page stops once the documents and photos behind
    it pass this many bytes (0: only the client's ``limit`` counts)."""


@dataclass(frozen=True)
class WorkerSettings:
    """The change follower and merge worker."""

    batch_size: int = 200
    """GRIDPATROL_WORKER_BATCH: changes processed per transaction."""
    idle_poll_s: float = 1.0
    """GRIDPATROL_WORKER_POLL: seconds between looks at the status outbox while the feeds are quiet
    (case changes made through the API reach tablets this quickly; feeds themselves are followed
    with longpoll, not polled)."""
    max_backoff_s: float = 30.0
    """GRIDPATROL_WORKER_MAX_BACKOFF: ceiling of the retry delay after an error."""
    lease_s: float = 30.0
    """GRIDPATROL_WORKER_LEASE: seconds a worker keeps a feed without renewing it; a crashed
    worker's feeds pass to another after this long. A following worker renews its leases every
    third of this."""
    max_longpolls: int = 32
    """GRIDPATROL_WORKER_LONGPOLLS: most ``_changes`` longpoll requests one worker keeps open at
    once; with more idle feeds than this, they take turns (each wait shortened accordingly)."""
    longpoll_timeout_s: float = 15.0
    """GRIDPATROL_WORKER_LONGPOLL_TIMEOUT: how long CouchDB holds one longpoll before answering
    "nothing new"; never more than half the lease (below proxies' idle timeouts, too)."""

    @property
    def longpoll_wait_s(self) -> float:
        """The longpoll timeout actually used: at most half the lease, at least a tenth of a second."""
        return max(0.1, min(self.longpoll_timeout_s, self.lease_s / 2))


@dataclass(frozen=True)
class Settings:
    environment: str
    """GRIDPATROL_ENV: development, test or production."""
    database: DatabaseSettings
    couch: CouchSettings
    auth: AuthSettings
    gateway: GatewaySettings
    worker: WorkerSettings
    data_dir: Path
    """GRIDPATROL_DATA_DIR: local folder for the SQLite file and demo CouchDB data."""
    timezone: str = "Asia/Shanghai"
    """GRIDPATROL_TIMEZONE: local time shown to people; storage is always UTC."""
    taxonomy_file: Path | None = None
    """GRIDPATROL_TAXONOMY_FILE: taxonomy JSON imported by ``gridpatrol setup`` and by
    ``POST /api/taxonomy/reload``; the packaged ``field_schema/data/taxonomy.json`` when unset."""
    workday_calendar_file: Path | None = None
    """GRIDPATROL_WORKDAY_CALENDAR: working-day calendar (holidays, adjusted working days) for dispatch
    deadlines; the packaged ``server/cases/data/workdays_cn.json`` (mainland China) when unset."""

    @property
    def is_development(self) -> bool:
        return self.environment in DEVELOPMENT_ENVIRONMENTS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        environment = env.get("GRIDPATROL_ENV", "development")
        data_dir = Path(env.get("GRIDPATROL_DATA_DIR", ".data")).resolve()
        couch_url = env.get("GRIDPATROL_COUCH_URL", "http://127.0.0.1:5984").rstrip("/")
        db_prefix = env.get("GRIDPATROL_COUCH_DB_PREFIX", "gp_")
        secret_key = env.get("GRIDPATROL_SECRET_KEY", "")
        couch_password = env.get("GRIDPATROL_COUCH_PASSWORD", "")
        settings = cls(
            environment=environment,
            data_dir=data_dir,
            timezone=env.get("GRIDPATROL_TIMEZONE", "Asia/Shanghai"),
            taxonomy_file=Path(env["GRIDPATROL_TAXONOMY_FILE"]).resolve()
            if env.get("GRIDPATROL_TAXONOMY_FILE")
            else None,
            workday_calendar_file=Path(env["GRIDPATROL_WORKDAY_CALENDAR"]).resolve()
            if env.get("GRIDPATROL_WORKDAY_CALENDAR")
            else None,
            database=DatabaseSettings(
                url=env.get("GRIDPATROL_DATABASE_URL", f"sqlite:///{data_dir / 'gridpatrol.sqlite3'}"),
                echo=env.get("GRIDPATROL_DATABASE_ECHO", "") == "1",
            ),
            couch=CouchSettings(
                url=couch_url,
                username=env.get("GRIDPATROL_COUCH_USER", "gridpatrol"),
                password=couch_password,
                db_prefix=db_prefix,
                timeout_s=_float(env, "GRIDPATROL_COUCH_TIMEOUT", 30.0),
            ),
            auth=AuthSettings(
                secret_key=secret_key,
                token_ttl_s=_int(env, "GRIDPATROL_TOKEN_TTL", 12 * 3600),
                credential_cache_s=_int(env, "GRIDPATROL_CREDENTIAL_CACHE", 300),
            ),
            gateway=GatewaySettings(
                server_uuid=env.get("GRIDPATROL_SERVER_UUID")
                or uuid.uuid5(uuid.NAMESPACE_URL, f"{couch_url}/{db_prefix}").hex,
                max_body_bytes=_int(env, "GRIDPATROL_MAX_BODY_BYTES", 256 * 1024 * 1024),
                max_attachment_bytes=_int(env, "GRIDPATROL_MAX_ATTACHMENT_BYTES", 10 * 1024 * 1024),
                cors_origins=_list(env, "GRIDPATROL_CORS_ORIGINS", ()),
                virtual_db=env.get("GRIDPATROL_VIRTUAL_DB", "field"),
                changes_byte_budget=_int(env, "GRIDPATROL_CHANGES_BYTE_BUDGET", 256 * 1024),
            ),
            worker=WorkerSettings(
                batch_size=_int(env, "GRIDPATROL_WORKER_BATCH", 200),
                idle_poll_s=_float(env, "GRIDPATROL_WORKER_POLL", 1.0),
                max_backoff_s=_float(env, "GRIDPATROL_WORKER_MAX_BACKOFF", 30.0),
                lease_s=_float(env, "GRIDPATROL_WORKER_LEASE", 30.0),
                max_longpolls=_int(env, "GRIDPATROL_WORKER_LONGPOLLS", 32),
                longpoll_timeout_s=_float(env, "GRIDPATROL_WORKER_LONGPOLL_TIMEOUT", 15.0),
            ),
        )
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse unusable worker limits, and placeholder secrets outside development."""
        if self.worker.max_longpolls < 1:
            raise SettingsError("GRIDPATROL_WORKER_LONGPOLLS must be at least 1")
        if self.is_development:
            return
        if self.auth.secret_key in PLACEHOLDER_SECRETS or len(self.auth.secret_key) < 32:
            raise SettingsError("GRIDPATROL_SECRET_KEY must be set to at least 32 random characters")
        if self.couch.password in PLACEHOLDER_SECRETS:
            raise SettingsError("GRIDPATROL_COUCH_PASSWORD must be set")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings.from_env()
