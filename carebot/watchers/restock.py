"""``restock.due``: remind a customer to reorder before a consumable runs out.

Due at the predicted run-out minus the learned transit time to their region and the product's
``restock_lead_days``; pulled earlier (never later) when a disruption would hold up the
ordinary reorder. Nothing once the customer has ordered the SKU again, nor after run-out.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from carebot.events import Event, EventType, Order
from carebot.forecast.restock import Outlook, Series, outlook
from carebot.rulebook.schema import Rulebook
from carebot.store.database import Database
from carebot.watchers._forecasting import (
    ForecastOptions,
    ForecastWatcher,
    restock_fields,
    stock_up_fields,
    take_snapshot,
    zone,
)
from carebot.watchers.base import Watcher

__all__ = ["RestockDue", "restock_watchers"]


class RestockDue(ForecastWatcher):
    """Emits ``restock.due`` once per customer, SKU and the order being used up."""

    name = "restock"

    def scan(self, *, now: datetime) -> list[Event]:
        rulebook = self.rules()
        snapshot = take_snapshot(self.db, rulebook, now=now, options=self.options)
        events = []
        for series in snapshot.series:
            tz = zone(
                series.timezone,
                series.phone,
                series.shipping_address,
                self.options.default_timezone,
            )
            facts = rulebook.profile_for(series.sku, list(series.tags))
            seen = outlook(
                series,
                facts=facts,
                transit_days=snapshot.transit.days_to(series.shipping_address),
                disruptions=snapshot.disruptions,
                zone=tz,
            )
            if seen is None or not seen.due <= now < seen.run_out.run_out_at:
                continue
            events.append(self._event(series, seen, tz=tz))
        return events

    @staticmethod
    def _event(series: Series, seen: Outlook, *, tz: ZoneInfo) -> Event:
        run_out = seen.run_out
        extra: dict[str, Any] = {"restock": restock_fields(series, seen, tz)}
        if seen.stock_ups:
            extra["disruption"] = stock_up_fields(series, seen, seen.stock_ups[0], tz)
        return Event(
            id=f"restock:{series.customer_id}:{series.sku}:{run_out.order_id}",
            type=EventType.RESTOCK_DUE,
            occurred_at=seen.due,
            order=Order(id=run_out.order_id),
            **extra,
        )


def restock_watchers(
    *, db: Database, rules: Callable[[], Rulebook], options: ForecastOptions | None = None
) -> list[Watcher]:
    """The issue-5 watchers: restock reminders and disruption warnings."""
    from carebot.watchers.disruptions import DisruptionWatch

    return [
        RestockDue(db=db, rules=rules, options=options),
        DisruptionWatch(db=db, rules=rules, options=options),
    ]
