import pytest

from server.settings import Settings, SettingsError

pytestmark = pytest.mark.unit


def test_defaults_are_sqlite_in_the_data_dir(tmp_path) -> None:
    settings = Settings.from_env({"GRIDPATROL_DATA_DIR": str(tmp_path)})
    assert settings.database.is_sqlite
    assert settings.database.url == f"sqlite:///{tmp_path / 'gridpatrol.sqlite3'}"
    assert settings.database.async_url.startswith("sqlite+aiosqlite:///")
    assert settings.timezone == "Asia/Shanghai"
    assert settings.gateway.max_attachment_bytes == 10 * 1024 * 1024


def test_postgresql_url_switches_backend() -> None:
    settings = Settings.from_env({"GRIDPATROL_DATABASE_URL": "postgresql://u@h/db"})
    assert not settings.database.is_sqlite
    assert settings.database.async_url == "postgresql+psycopg://u@h/db"


def test_server_uuid_is_stable_for_one_deployment() -> None:
    env = {"GRIDPATROL_COUCH_URL": "http://couch:5984"}
    assert Settings.from_env(env).gateway.server_uuid == Settings.from_env(env).gateway.server_uuid
    other = Settings.from_env({"GRIDPATROL_COUCH_URL": "http://other:5984"})
    assert other.gateway.server_uuid != Settings.from_env(env).gateway.server_uuid


def test_production_refuses_placeholder_secrets() -> None:
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        Settings.from_env({"GRIDPATROL_ENV": "production", "GRIDPATROL_SECRET_KEY": "changeme"})
    with pytest.raises(SettingsError, match="COUCH_PASSWORD"):
        Settings.from_env({"GRIDPATROL_ENV": "production", "GRIDPATROL_SECRET_KEY": "x" * 40})
    ok = Settings.from_env(
        {
            "GRIDPATROL_ENV": "production",
            "GRIDPATROL_SECRET_KEY": "x" * 40,
            "GRIDPATROL_COUCH_PASSWORD": "s3cret-pw",
        }
    )
    assert not ok.is_development


def test_bad_numbers_name_the_variable() -> None:
    with pytest.raises(SettingsError, match="GRIDPATROL_MAX_BODY_BYTES"):
        Settings.from_env({"GRIDPATROL_MAX_BODY_BYTES": "lots"})


def test_couch_database_names() -> None:
    couch = Settings.from_env({"GRIDPATROL_COUCH_DB_PREFIX": "zr_"}).couch
    assert couch.grid_db("ZR01") == "zr_grid_zr01"
    assert couch.reference_db == "zr_reference"


def test_taxonomy_file_is_optional_and_resolved(tmp_path) -> None:
    assert Settings.from_env({}).taxonomy_file is None  # the packaged file is used
    custom = tmp_path / "taxonomy.json"
    assert Settings.from_env({"GRIDPATROL_TAXONOMY_FILE": str(custom)}).taxonomy_file == custom.resolve()


def test_worker_longpoll_wait_stays_below_the_lease() -> None:
    default = Settings.from_env({}).worker
    assert (default.max_longpolls, default.longpoll_wait_s) == (32, 15.0)
    short_lease = Settings.from_env({"GRIDPATROL_WORKER_LEASE": "2"}).worker
    assert short_lease.longpoll_wait_s == 1.0  # half the lease: renewed long before it lapses
    with pytest.raises(SettingsError, match="GRIDPATROL_WORKER_LONGPOLLS"):
        Settings.from_env({"GRIDPATROL_WORKER_LONGPOLLS": "0"})
