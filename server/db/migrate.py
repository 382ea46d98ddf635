"""Apply Alembic migrations programmatically (``gridpatrol migrate`` and the prestart step)."""

from pathlib import Path

from alembic import command
from alembic.config import Config

from server.settings import Settings

__all__ = ["alembic_config", "upgrade_to_head"]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", settings.database.sync_url.replace("%", "%%"))
    return config


def upgrade_to_head(settings: Settings) -> None:
    if settings.database.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        path = settings.database.sync_url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(settings), "head")
