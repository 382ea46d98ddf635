"""A SQL schema migrated to a chosen revision, for the tests of the migrations themselves."""

from pathlib import Path

from alembic import command

from server.db.migrate import alembic_config, upgrade_to_head
from server.settings import Settings

__all__ = ["schema_at"]


def schema_at(database_url: str, data_dir: Path, revision: str = "head") -> Settings:
    """Settings of a test deployment whose schema stands at ``revision``.

    It goes up to head first and back down from there: head is what creates the data folder and
    the database, and going down checks each downgrade on the way."""
    settings = Settings.from_env(
        {
            "GRIDPATROL_ENV": "test",
            "GRIDPATROL_DATA_DIR": str(data_dir),
            "GRIDPATROL_DATABASE_URL": database_url,
        }
    )
    upgrade_to_head(settings)
    if revision != "head":
        command.downgrade(alembic_config(settings), revision)
    return settings
