"""The watcher contract: a periodic scan that turns what the store knows into derived events.

A watcher never sends anything itself. ``scan(now)`` reads the store and returns derived
canonical events (``shipment.stalled``, ``disruption.stock_up``, ``restock.due``, …) whose ids
are deterministic (e.g. ``stalled:s-1``: once per shipment), so that the pipeline stores each
once per source however often, and by however many daemons, the scan runs. The daemon runs every
watcher as an APScheduler interval job; ``carebot simulate`` calls ``scan`` on virtual time at
the same interval; tests call it directly.
"""

from __future__ import annotations

import abc
from datetime import datetime, timedelta

from carebot.events import Event

__all__ = ["Watcher"]


class Watcher(abc.ABC):
    """One periodic scan. Subclasses set ``name`` and ``interval`` and implement ``scan``."""

    name: str
    interval: timedelta = timedelta(minutes=10)

    @property
    def source(self) -> str:
        """The event source its derived events are stored under (one dedupe space per watcher)."""
        return f"watcher:{self.name}"

    @abc.abstractmethod
    def scan(self, *, now: datetime) -> list[Event]:
        """The derived events that hold at ``now`` (repeats are harmless: ids dedupe them)."""

    def idle_until(self, *, now: datetime) -> datetime | None:
        """Until when ``scan`` would find nothing new if the store does not change.

        Only ``carebot simulate`` asks, to skip the ticks of a 400-day replay that would find
        nothing; the daemon scans at every interval. ``None``: nothing until the store changes.
        The default, ``now``, means "cannot tell": scan at every tick.
        """
        return now
