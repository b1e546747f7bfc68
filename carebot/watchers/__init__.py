"""Periodic scans that emit derived events (stalled and late shipments, disruptions, restock)."""

from __future__ import annotations

from carebot.watchers.base import Watcher

__all__ = ["Watcher"]
