"""Daily time windows ("09:00-21:00") and durations ("3d", "1d12h"): pure functions on time.

A window is in the customer's local time. The next allowed instant is computed on wall-clock
times in the customer's zone and converted back to UTC, so it stays right across DST changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = ["DailyWindow", "next_allowed", "parse_duration", "parse_window"]

_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)", re.IGNORECASE)
_UNIT_SECONDS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}


@dataclass(frozen=True)
class DailyWindow:
    """Local wall-clock times [start, end); an end before the start wraps past midnight."""

    start: time
    end: time

    def contains(self, moment: time) -> bool:
        if self.start == self.end:
            return True
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end

    def inverse(self) -> DailyWindow:
        return DailyWindow(self.end, self.start)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def parse_window(text: str) -> DailyWindow:
    """Parse ``"HH:MM-HH:MM"``; raise ``ValueError`` with the reason otherwise."""
    match = _WINDOW.match(text)
    if not match:
        raise ValueError(f"window {text!r} is not HH:MM-HH:MM")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    for hour, minute in ((h1, m1), (h2, m2)):
        if not (0 <= hour <= 24 and 0 <= minute < 60) or (hour == 24 and minute):
            raise ValueError(f"window {text!r} has a time out of range")
    start = time(h1 % 24, m1)
    end = time(h2 % 24, m2)
    if start == end:
        raise ValueError(f"window {text!r} is empty")
    return DailyWindow(start, end)


def parse_duration(text: str) -> timedelta:
    """Parse ``"3d"``, ``"36h"``, ``"1d12h"``, ``"90m"`` or ``"0"``; else raise ``ValueError``."""
    cleaned = text.strip()
    if cleaned in {"0", ""}:
        if cleaned == "":
            raise ValueError("duration is empty")
        return timedelta(0)
    pos = 0
    seconds = 0.0
    for match in _DURATION_PART.finditer(cleaned):
        if cleaned[pos : match.start()].strip():
            break
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
        pos = match.end()
    if pos == 0 or cleaned[pos:].strip():
        raise ValueError(f"duration {text!r} is not like 3d, 12h, 30m or 1d12h")
    try:
        return timedelta(seconds=seconds)
    except OverflowError as exc:  # a typo such as 99999999999d must read as a bad value
        raise ValueError(f"duration {text!r} is too long") from exc


def _wall(day: date, moment: time, zone: ZoneInfo, fold: int = 0) -> datetime:
    """The instant the local clock in ``zone`` shows ``moment`` on ``day`` (gap times move on).

    ``fold=1`` picks the second of the two instants a fall-back night shows the same time.
    """
    local = datetime.combine(day, moment, tzinfo=zone).replace(fold=fold)
    # A time in a spring-forward gap does not exist; the round trip moves it past the gap.
    return local.astimezone(UTC).astimezone(zone)


def next_allowed(instant: datetime, zone: ZoneInfo, windows: list[DailyWindow]) -> datetime:
    """The first instant at or after ``instant`` whose local time lies in every window (UTC)."""
    if not windows:
        return instant.astimezone(UTC)

    def allowed(local: datetime) -> bool:
        return all(w.contains(local.time()) for w in windows)

    local = instant.astimezone(zone)
    if allowed(local):
        return instant.astimezone(UTC)
    # The intersection of daily windows opens at one of their starts. Compare in UTC: aware
    # datetimes sharing a tzinfo compare by wall time, which is wrong in a fall-back night's
    # repeated hour (01:30 PDT would count as later than 01:10 PST).
    start = instant.astimezone(UTC)
    candidates = sorted(
        {
            _wall(local.date() + timedelta(days=offset), w.start, zone, fold).astimezone(UTC)
            for offset in range(-1, 3)
            for w in windows
            for fold in (0, 1)
        }
    )
    for candidate in candidates:
        if candidate > start and allowed(candidate.astimezone(zone)):
            return candidate
    raise ValueError(f"the windows {', '.join(map(str, windows))} never overlap")
