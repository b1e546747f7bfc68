"""The one source of time: domain code asks a clock, never ``datetime.now()``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


def check_aware(value: datetime, name: str = "datetime") -> datetime:
    """Return ``value`` if it carries a time zone, else raise ``ValueError``."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value


class Clock(Protocol):
    """Tells the current instant (timezone-aware, UTC)."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock, for the daemon."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class VirtualClock:
    """A clock that only moves when told to: for tests and ``carebot simulate``."""

    def __init__(self, start: datetime) -> None:
        self._now = check_aware(start, "start").astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def set(self, instant: datetime) -> None:
        instant = check_aware(instant, "instant").astimezone(UTC)
        if instant < self._now:
            raise ValueError("a virtual clock never goes back")
        self._now = instant

    def advance(self, delta: timedelta) -> None:
        self.set(self._now + delta)
