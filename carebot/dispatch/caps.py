"""Frequency caps over a rolling window: pure arithmetic on the times messages were sent."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

__all__ = ["ROLLING_WINDOW", "merge_entry", "next_free_slot"]

ROLLING_WINDOW = timedelta(hours=24)


def next_free_slot(
    sent_at: Iterable[datetime],
    *,
    limit: int,
    now: datetime,
    window: timedelta = ROLLING_WINDOW,
) -> datetime:
    """The first instant at or after ``now`` when one more message keeps within the cap.

    A message sent at ``t`` counts against every instant in ``[t, t + window)``; so with
    ``limit`` messages in the window, the next one may go when the oldest that still counts
    ages out. ``now`` itself when fewer than ``limit`` count.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    counting = sorted(t for t in sent_at if now - window < t <= now)
    if len(counting) < limit:
        return now
    # Once the (len - limit + 1) oldest have aged out, limit - 1 remain: room for one more.
    return counting[len(counting) - limit] + window


def merge_entry(context: Mapping[str, Any]) -> dict[str, Any]:
    """What a merged message needs of one absorbed notice: its order and its shipment."""
    return {"order": context.get("order") or {}, "shipment": context.get("shipment") or {}}
