"""Which parcels a disruption catches: going where it is, arriving after it starts.

The same test the disruption watcher applies before it warns a customer, read from what the
store knows about a parcel: its expected delivery day, else its ship time plus a transit time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from carebot.disruptions.active import window_of
from carebot.disruptions.regions import affects_address
from carebot.rulebook.schema import Disruption

__all__ = ["DEFAULT_TRANSIT_DAYS", "catches", "expected_arrival"]

# As the watchers assume for a region without enough delivered parcels to learn from.
DEFAULT_TRANSIT_DAYS = 3.0


def expected_arrival(
    expected_delivery: date | None,
    shipped_at: datetime | None,
    *,
    zone: ZoneInfo,
    now: datetime,
    transit_days: float = DEFAULT_TRANSIT_DAYS,
) -> datetime:
    """The end of the expected delivery day, else shipped + transit time (never before now)."""
    if expected_delivery is not None:
        return datetime.combine(expected_delivery + timedelta(days=1), time(0), tzinfo=zone)
    return max(now, (shipped_at or now) + timedelta(days=transit_days))


def catches(
    disruption: Disruption,
    address: Mapping[str, Any] | None,
    arrival: datetime,
    *,
    zone: ZoneInfo,
    now: datetime,
) -> bool:
    """Whether a parcel to ``address`` arriving at ``arrival`` meets ``disruption``: it goes
    where the disruption is, would arrive after it starts, and the disruption is not over."""
    window = window_of(disruption, zone)
    return window.start < arrival and now < window.end and affects_address(disruption, address)
