"""The watcher contract: a periodic scan that turns what the store knows into derived events.

A watcher never sends anything itself. ``scan(now)`` reads the store and returns derived
canonical events (``shipment.stalled``, ``disruption.stock_up``, ``restock.due``, …) whose ids
are deterministic (e.g. ``stalled:s-1:2026-11-23``), so that the pipeline stores each once per
source however often, and by however many daemons, the scan runs. The daemon runs every
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
