"""A period of local days chosen with ``?from=YYYY-MM-DD&to=YYYY-MM-DD`` (both included)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from starlette.datastructures import QueryParams

__all__ = ["MAX_DAYS", "Period", "chosen_period"]

MAX_DAYS = 366


@dataclass(frozen=True)
class Period:
    first: date
    last: date
    # Local midnights: the start of ``first`` and the end of ``last``.
    since: datetime
    until: datetime

    @property
    def query(self) -> str:
        return f"from={self.first.isoformat()}&to={self.last.isoformat()}"


def _day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def chosen_period(query: QueryParams, *, today: date, zone: ZoneInfo, default_days: int) -> Period:
    """The days asked for (default: the last ``default_days``, today included), at most a year;
    a reversed range is read the right way round, an unreadable day as its default."""
    last = _day(query.get("to")) or today
    first = _day(query.get("from")) or last - timedelta(days=default_days - 1)
    if first > last:
        first, last = last, first
    first = max(first, last - timedelta(days=MAX_DAYS - 1))
    since = datetime.combine(first, datetime.min.time(), tzinfo=zone)
    until = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    return Period(first, last, since, until)
