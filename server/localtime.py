"""Store UTC, show local (Asia/Shanghai by default)."""

from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from server.db.models import as_utc

__all__ = ["to_local"]


@lru_cache(maxsize=4)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def to_local(value: datetime, zone: str = "Asia/Shanghai") -> datetime:
    """The same instant, with the local offset (what people read)."""
    return as_utc(value).astimezone(_zone(zone))
