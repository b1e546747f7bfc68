"""Business hours: when the shop works, and deadlines counted in working time.

A case's response deadline (``respond_within: 4h`` of its category) counts only the shop's
working hours on its working days, in the shop's time zone; public holidays of a country (from
the ``holidays`` package, e.g. ``CN``) are days off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from carebot.rulebook.windows import parse_window

__all__ = ["BusinessHours", "parse_days"]

_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Whatever the calendar, a deadline further than this is a configuration mistake.
_MAX_DAYS = 400


def parse_days(text: str) -> frozenset[int]:
    """``"mon-fri"``, ``"mon,wed,sat"`` or ``"mon-sun"`` → weekday numbers (Monday is 0)."""
    days: set[int] = set()
    for part in text.lower().replace(" ", "").split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        if first not in _DAY_NAMES or (last and last not in _DAY_NAMES):
            raise ValueError(f"business days {text!r}: use mon, tue, … sun, e.g. mon-fri")
        start, end = _DAY_NAMES.index(first), _DAY_NAMES.index(last or first)
        days.update(range(start, end + 1) if start <= end else [*range(start, 7), *range(end + 1)])
    if not days:
        raise ValueError(f"business days {text!r} names no day")
    return frozenset(days)


@lru_cache(maxsize=8)
def _holidays(country: str, year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays(country, years=year).keys())


@dataclass(frozen=True)
class BusinessHours:
    """Working hours ``HH:MM-HH:MM`` (or ``always``) on ``days``, in ``zone``."""

    zone: str = "Asia/Shanghai"
    hours: str = "09:00-18:00"
    days: frozenset[int] = field(default_factory=lambda: frozenset(range(5)))
    holiday_country: str | None = None

    def _open_on(self, day: date) -> bool:
        if day.weekday() not in self.days:
            return False
        return not (self.holiday_country and day in _holidays(self.holiday_country, day.year))

    def _span(self, day: date) -> tuple[datetime, datetime] | None:
        """The working span of ``day`` as UTC instants; None on a day off."""
        if not self._open_on(day):
            return None
        zone = ZoneInfo(self.zone)
        if self.hours.strip().lower() == "always":
            start, end = time(0), time(0)
        else:
            window = parse_window(self.hours)
            if window.end < window.start and window.end != time(0):
                raise ValueError(f"business hours {self.hours!r} should not cross midnight")
            start, end = window.start, window.end
        opens = datetime.combine(day, start, tzinfo=zone).astimezone(UTC)
        closes_day = day + timedelta(days=1) if end == time(0) else day
        closes = datetime.combine(closes_day, end, tzinfo=zone).astimezone(UTC)
        return opens, closes

    def add(self, start: datetime, work: timedelta) -> datetime:
        """The instant ``work`` of working time after ``start`` (UTC)."""
        left = work
        moment = start.astimezone(UTC)
        day = moment.astimezone(ZoneInfo(self.zone)).date()
        for _ in range(_MAX_DAYS):
            span = self._span(day)
            if span is not None:
                opens, closes = span
                begin = max(opens, moment)
                if begin < closes:
                    if begin + left <= closes:
                        return begin + left
                    left -= closes - begin
            day += timedelta(days=1)
        raise ValueError(f"no {work} of business hours within {_MAX_DAYS} days: check the days")
