"""``gridpatrol``: the one command line of the project (typer)."""

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from server.db.models import Role, UserCreate
from server.settings import get_settings

__all__ = ["app", "main"]

app = typer.Typer(help="网格巡查 gridpatrol: sync gateway, merge worker and case API.", no_args_is_help=True)
user_app = typer.Typer(help="Manage users.", no_args_is_help=True)
app.add_typer(user_app, name="user")

# Seconds an idle HTTP connection stays open: longer than nginx's upstream keepalive_timeout (60 s).
KEEP_ALIVE_S = 75
DEFAULT_GRID_FILE = Path(__file__).resolve().parents[1] / "geo" / "data" / "zhenru_demo.geojson"


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Gateway processes (they are stateless).")] = 1,
) -> None:
    """Run the sync gateway and case API (uvicorn)."""
    import uvicorn  # noqa: PLC0415

    uvicorn.run(
        "server.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        proxy_headers=True,
        # If the server closed idle connections first, a request already under way from nginx or a
        # tablet on a slow link would meet a closed socket ("fetch failed") and have to be retried.
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=5,
    )


@app.command()
def worker(
    once: Annotated[bool, typer.Option(help="Drain every feed once and exit.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the change follower: merge synced documents into cases, write statuses back."""
    _logging(verbose)
    from server.runtime import Runtime  # noqa: PLC0415
    from sync.worker import ChangeFollower  # noqa: PLC0415

    async def run() -> None:
        runtime = await Runtime.open(get_settings())
        try:
            follower = ChangeFollower(runtime)
            if once:
                stats = await follower.run_once()
                typer.echo(
                    json.dumps(
                        {"changes": stats.changes, "outcomes": stats.outcomes, "published": stats.published}
                    )
                )
                return
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await follower.run_forever(stop)
        finally:
            await runtime.close()

    asyncio.run(run())


@app.command()
def tombstones(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count them, write nothing.")] = False,
    compact: Annotated[
        bool, typer.Option(help="Compact each database changed (drops the old bodies).")
    ] = True,
) -> None:
    """Make deletions stored with a body bare, in every grid and alerts database (safe while
    tablets sync; running it again changes nothing)."""
    from server.runtime import Runtime  # noqa: PLC0415
    from sync.tombstones import bare_tombstones  # noqa: PLC0415

    async def run() -> int:
        runtime = await Runtime.open(get_settings())
        left = 0
        try:
            couch = runtime.settings.couch
            for code in runtime.grids.grid_codes:
                for db in (couch.alert_db(code), couch.grid_db(code)):
                    report = await bare_tombstones(runtime.couch, db, write=not dry_run, compact=compact)
                    left += len(report.left)
                    typer.echo(report.summary())
        finally:
            await runtime.close()
        return 1 if left else 0

    raise typer.Exit(asyncio.run(run()))


@app.command()
def migrate() -> None:
    """Apply SQL migrations (Alembic) up to head."""
    from server.provision import migrate as run_migrations  # noqa: PLC0415

    run_migrations(get_settings())
    typer.echo("migrations applied")


@app.command()
def setup(
    grids: Annotated[Path, typer.Option(help="GeoJSON of grids and micro-grids.")] = DEFAULT_GRID_FILE,
) -> None:
    """Prestart: migrate SQL, load grids, import the taxonomy file, create CouchDB databases, publish
    reference documents."""
    from server.provision import setup as run_setup  # noqa: PLC0415

    report = asyncio.run(run_setup(get_settings(), grids))
    typer.echo(
        f"{report.grids} grids, {report.micro_grids} micro-grids, {len(report.databases)} CouchDB databases, "
        f"{report.reference_written} reference documents written, "
        f"taxonomy revision {report.taxonomy_revision}"
    )


@user_app.command("add")
def user_add(
    username: str,
    role: Annotated[Role, typer.Option(help="volunteer, grid_leader, coordinator, admin or department.")],
    grids: Annotated[str, typer.Option(help="Comma-separated grid or micro-grid codes.")] = "",
    department: Annotated[
        str | None, typer.Option(help="Department code (taxonomy) of a department account.")
    ] = None,
    display_name: Annotated[str, typer.Option()] = "",
    password: Annotated[
        str,
        typer.Option(
            prompt=True, hide_input=True, confirmation_prompt=True, envvar="GRIDPATROL_NEW_PASSWORD"
        ),
    ] = "",
) -> None:
    """Create a user, or update an existing one (role, grids, password)."""
    from server.db import make_engine, make_session_maker  # noqa: PLC0415
    from server.provision import upsert_user  # noqa: PLC0415

    create = UserCreate(
        username=username,
        role=role,
        grids=[g.strip() for g in grids.split(",") if g.strip()],
        display_name=display_name,
        department=department,
        password=password,
    )

    async def run() -> None:
        engine = make_engine(get_settings().database)
        try:
            user = await upsert_user(make_session_maker(engine), create)
        finally:
            await engine.dispose()
        typer.echo(f"user {user.username} ({user.role}) grids={user.grids}")

    asyncio.run(run())


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="Port of the gateway and API.")] = 8000,
    couch_port: Annotated[int, typer.Option(help="Port of the local pouchdb-server.")] = 5984,
    findings: Annotated[int, typer.Option(help="Demo hazard findings to seed.")] = 60,
) -> None:
    """Run everything locally with demo data: pouchdb-server, SQLite, gateway, worker. Ctrl-C stops."""
    from server.demo import run_demo  # noqa: PLC0415

    raise typer.Exit(run_demo(port=port, couch_port=couch_port, findings=findings))


def main() -> None:
    app()
