"""Working days for dispatch deadlines: weekends, public holidays and adjusted working days (调休).

Pure apart from ``load_calendar``. A deadline of N working days ends at the end (23:59:59 local)
of the Nth working day after the local date of dispatch; the dispatch day itself does not count.
Local dates are those of the configured time zone (Asia/Shanghai); the result is stored in UTC.
"""

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

__all__ = [
    "DEFAULT_CALENDAR_FILE",
    "CalendarError",
    "Deadline",
    "WorkCalendar",
    "load_calendar",
]

DEFAULT_CALENDAR_FILE = Path(__file__).resolve().parent / "data" / "workdays_cn.json"
_END_OF_DAY = time(23, 59, 59)
_MAX_WORKING_DAYS = 250


class CalendarError(ValueError):
    """The calendar file is not usable."""


@dataclass(frozen=True)
class Deadline:
    due_date: date
    """The last working day, local."""
    at: datetime
    """End of that day, in UTC."""
    provisional: bool
    """Some counted day lies in a year the calendar does not cover (weekends only there)."""


@dataclass(frozen=True)
class WorkCalendar:
    holidays: frozenset[date]
    workdays: frozenset[date]
    """Adjusted working days (调休): weekend days that are worked."""
    years: frozenset[int]
    """Years whose holidays are known."""

    def covers(self, day: date) -> bool:
        return day.year in self.years

    def is_working_day(self, day: date) -> bool:
        if day in self.workdays:
            return True
        if day in self.holidays:
            return False
        return day.weekday() < 5

    def add_working_days(self, start: date, days: int) -> tuple[date, bool]:
        """The Nth working day after ``start`` (not counting ``start``), and whether every day
        looked at was covered by the calendar."""
        if not 1 <= days <= _MAX_WORKING_DAYS:
            raise ValueError(f"working days must be between 1 and {_MAX_WORKING_DAYS}, got {days}")
        day, left, covered = start, days, True
        while left:
            day += timedelta(days=1)
            covered = covered and self.covers(day)
            if self.is_working_day(day):
                left -= 1
        return day, not covered

    def deadline(self, dispatched_at: datetime, days: int, zone: str = "Asia/Shanghai") -> Deadline:
        """End of the Nth working day after the local date of ``dispatched_at`` (aware datetime)."""
        if dispatched_at.tzinfo is None:
            raise ValueError("dispatched_at must be timezone-aware")
        tz = ZoneInfo(zone)
        local_day = dispatched_at.astimezone(tz).date()
        due, provisional = self.add_working_days(local_day, days)
        at = datetime.combine(due, _END_OF_DAY, tzinfo=tz).astimezone(UTC)
        return Deadline(due_date=due, at=at, provisional=provisional)

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> "WorkCalendar":
        """Build from the JSON layout of ``data/workdays_cn.json``."""
        holidays: set[date] = set()
        workdays: set[date] = set()
        years: set[int] = set()
        try:
            for year_text, block in document["years"].items():
                year = int(year_text)
                years.add(year)
                for span in block.get("holidays", []):
                    first, last = date.fromisoformat(span["from"]), date.fromisoformat(span["to"])
                    if last < first or first.year != year or last.year != year:
                        raise CalendarError(f"{year}: holiday span {first}..{last} is not inside the year")
                    holidays.update(first + timedelta(days=k) for k in range((last - first).days + 1))
                for entry in block.get("workdays", []):
                    day = date.fromisoformat(entry["date"])
                    if day.year != year:
                        raise CalendarError(f"{year}: adjusted working day {day} is not inside the year")
                    workdays.add(day)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            if isinstance(exc, CalendarError):
                raise
            raise CalendarError(f"malformed working-day calendar: {exc}") from exc
        both = holidays & workdays
        if both:
            raise CalendarError(f"days both holiday and working day: {sorted(both)}")
        return cls(frozenset(holidays), frozenset(workdays), frozenset(years))


@lru_cache(maxsize=4)
def load_calendar(path: Path | None = None) -> WorkCalendar:
    """The calendar file (the packaged mainland-China one by default), read once per path."""
    source = path or DEFAULT_CALENDAR_FILE
    try:
        document = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CalendarError(f"cannot read working-day calendar {source}: {exc}") from exc
    return WorkCalendar.from_document(document)
