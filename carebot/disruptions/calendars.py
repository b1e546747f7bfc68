"""Built-in disruption calendars, computed from the ``holidays`` package (no dates written here).

``cn-spring-festival``: the courier pause around 春节, from ``days_before`` the Lunar New
Year's Eve to ``days_after`` the last day of the statutory holiday, for all of mainland China.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

import holidays

from carebot.rulebook.schema import Disruption, Region

__all__ = [
    "CALENDARS",
    "SPRING_FESTIVAL",
    "CalendarOptions",
    "calendar_disruptions",
    "spring_festival",
]

SPRING_FESTIVAL = "cn-spring-festival"
CALENDARS = frozenset({SPRING_FESTIVAL})


@dataclass(frozen=True)
class CalendarOptions:
    """How wide the built-in windows are and how much they slow deliveries."""

    days_before: int = 7
    days_after: int = 7
    extra_transit_days: float = 3
    notice_days: float = 14


@lru_cache(maxsize=64)  # watchers ask every scan; the library builds a whole year each time
def spring_festival(year: int, options: CalendarOptions | None = None) -> Disruption:
    """The courier pause around the Spring Festival of ``year`` (Gregorian year of 春节)."""
    options = options or CalendarOptions()
    days = holidays.country_holidays("CN", years=year, language="en_US").get_named(
        "Chinese New Year"
    )
    if not days:
        raise ValueError(f"the holidays package knows no Spring Festival in {year}")
    return Disruption(
        id=f"{SPRING_FESTIVAL}-{year}",
        title=f"{year} 春节快递停运",
        regions=[Region(country="CN")],
        start=min(days) - timedelta(days=options.days_before),
        end=max(days) + timedelta(days=options.days_after),
        extra_transit_days=options.extra_transit_days,
        notice_days=options.notice_days,
    )


def calendar_disruptions(
    names: Iterable[str], years: Iterable[int], options: CalendarOptions | None = None
) -> list[Disruption]:
    """The disruptions of the named built-in calendars in ``years``; unknown names are skipped."""
    wanted = set(names)
    found: list[Disruption] = []
    if SPRING_FESTIVAL in wanted:
        found.extend(spring_festival(year, options) for year in years)
    return found
