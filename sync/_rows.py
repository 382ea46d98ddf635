"""Row shapes and writes the merge engine shares: outcomes, finding columns, case event and case
link rows, and bulk inserts."""

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, String, Table, insert
from sqlmodel.ext.asyncio.session import AsyncSession

from field_schema import Taxonomy
from geo import to_wgs84
from server.db.models import as_utc, utc_now
from sync._joins import JoinEvidence

__all__ = [
    "WORKER_ACTOR",
    "Change",
    "ChangeOutcome",
    "bulk_insert",
    "event_row",
    "finding_fields",
    "link_row",
]

WORKER_ACTOR = "system:worker"


@dataclass(frozen=True)
class ChangeOutcome:
    action: str
    """skipped, duplicate, invalid, created, joined, updated, deleted."""
    case_id: str | None = None
    detail: str = ""
    doc_id: str = ""


@dataclass
class Change:
    doc_id: str
    rev: str
    seq: str
    deleted: bool
    doc: Mapping[str, Any]


def _table(model: type[Any]) -> Table:
    """The Core table of a model: Core executemany skips the ORM's per-row bookkeeping."""
    table: Table = model.__table__
    return table


@functools.lru_cache(maxsize=4096)  # a page writes the same receive time on every row
def _sqlite_time(value: datetime) -> str:
    return as_utc(value).strftime("%Y-%m-%d %H:%M:%S.%f")


def _sqlite_json(value: Any) -> str:
    return "[]" if value == [] else json.dumps(value)  # most findings have no photos, no candidates


def _sqlite_converter(column: Any) -> Any:
    """How SQLAlchemy would bind a column's values for SQLite (UTC datetimes without offset, JSON
    as text, booleans as integers, enums as their text); None for values passed as they are."""
    kind = type(column.type)
    if issubclass(kind, DateTime):
        return _sqlite_time
    if issubclass(kind, JSON):
        return _sqlite_json
    if issubclass(kind, Boolean):
        return int
    if issubclass(kind, String):
        return str
    return None


async def bulk_insert(session: AsyncSession, model: type[Any], rows: Sequence[Mapping[str, Any]]) -> None:
    """Many rows of one table. On SQLite straight through the driver's ``executemany`` (SQLAlchemy's
    per-row parameter processing cost as much as SQLite's own work), the values converted column
    by column; elsewhere Core ``executemany``."""
    if not rows:
        return
    table = _table(model)
    connection = await session.connection()
    if connection.dialect.name != "sqlite":
        await session.exec(insert(table), params=rows)
        return
    columns = list(rows[0].keys())
    unknown = [c for c in columns if c not in table.c]
    if unknown:
        raise ValueError(f"unknown columns for {table.name}: {unknown}")
    sql = "INSERT INTO {} ({}) VALUES ({})".format(  # noqa: S608  (names checked against the table)
        table.name, ", ".join(columns), ", ".join("?" * len(columns))
    )
    by_column = [[row[c] for row in rows] for c in columns]
    for i, c in enumerate(columns):
        convert = _sqlite_converter(table.c[c])
        if convert is not None:
            by_column[i] = [None if v is None else convert(v) for v in by_column[i]]
    await connection.exec_driver_sql(sql, list(zip(*by_column, strict=True)))


def parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            return utc_now()
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def finding_fields(doc: Mapping[str, Any], taxonomy: Taxonomy, *, convert: bool = True) -> dict[str, Any]:
    """The finding's columns; with ``convert=False`` lat/lon stay as reported (``_to_wgs84_many``)."""
    location = doc["location"]
    lon, lat = float(location["lon"]), float(location["lat"])
    if convert:
        lon, lat = to_wgs84(lon, lat, str(location["datum"]))
    concern = taxonomy.concern(str(doc["concern_code"]))
    severity = doc.get("severity") or (concern.default_severity if concern else "medium")
    return {
        "author": str(doc["author"]),
        "device_id": str(doc["device_id"]),
        "schema_version": int(doc["schema_version"]),
        "concern_code": str(doc["concern_code"]),
        "severity": str(severity),
        "note": str(doc.get("note") or ""),
        "lat": lat,
        "lon": lon,
        "reported_lat": float(location["lat"]),
        "reported_lon": float(location["lon"]),
        "reported_datum": str(location["datum"]),
        "accuracy_m": float(location.get("accuracy_m") or 0.0),
        "observed_at": parse_time(doc["observed_at"]),
        "photos": sorted((doc.get("_attachments") or {}).keys()),
    }


def event_row(
    case_id: str,
    action: str,
    at: datetime,
    *,
    reason: str,
    details: dict[str, Any],
    actor: str = WORKER_ACTOR,
    from_state: str | None = None,
    to_state: str | None = None,
) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "at": at,
        "actor": actor,
        "action": action,
        "from_state": from_state,
        "to_state": to_state,
        "reason": reason,
        "details": details,
    }


def link_row(
    finding_id: str,
    case_id: str,
    kind: str,
    author: str,
    at: datetime,
    evidence: JoinEvidence | None = None,
    actor: str = WORKER_ACTOR,
) -> dict[str, Any]:
    return {
        "finding_id": finding_id,
        "case_id": case_id,
        "kind": kind,
        "actor": actor,
        "author": author,
        "matched_finding": evidence.matched_finding if evidence else None,
        "matched_author": evidence.matched_author if evidence else None,
        "distance_m": evidence.distance_m if evidence else None,
        "gap_s": evidence.gap_s if evidence else None,
        "radius_m": evidence.radius_m if evidence else None,
        "window_h": evidence.window_h if evidence else None,
        "at": at,
    }
