"""What both restock-aware watchers read from the store in one scan, and shared helpers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from carebot.contacts import normalize_phone, zone_for
from carebot.disruptions.active import active_disruptions
from carebot.disruptions.calendars import CalendarOptions
from carebot.forecast.restock import Outlook, Series, StockUp, group_series
from carebot.forecast.transit import TransitModel, TransitSample, learn_transit
from carebot.rulebook.schema import Disruption, Rulebook
from carebot.store import history
from carebot.store.database import Database
from carebot.watchers.base import Watcher

__all__ = [
    "ForecastOptions",
    "ForecastWatcher",
    "Snapshot",
    "last_day",
    "local_date",
    "restock_fields",
    "stock_up_fields",
    "take_snapshot",
    "zone",
]


@dataclass(frozen=True)
class ForecastOptions:
    """Tunables of the restock and disruption watchers (defaults suit a Chinese shop)."""

    default_timezone: str = "Asia/Shanghai"
    default_transit_days: float = 3.0
    min_transit_samples: int = 3
    history_days: int = 400
    calendar: CalendarOptions = field(default_factory=CalendarOptions)


@dataclass(frozen=True)
class Snapshot:
    transit: TransitModel
    disruptions: list[Disruption]
    series: list[Series]
    in_transit: list[history.ShipmentInTransit]


def take_snapshot(
    db: Database,
    rulebook: Rulebook,
    *,
    now: datetime,
    options: ForecastOptions,
    with_series: bool = True,
    with_in_transit: bool = False,
) -> Snapshot:
    """Learned transit times, active disruptions and purchase series, read in one transaction."""
    since = now - timedelta(days=options.history_days)
    with db.transaction() as session:
        transits = history.delivered_transits(session, since=since)
        declared = history.declared_disruptions(session)
        lines = history.purchase_lines(session, since=since) if with_series else []
        in_transit = history.shipments_in_transit(session, since=since) if with_in_transit else []
    samples = [
        TransitSample(shipped, delivered, address.get("country"), address.get("province"))
        for shipped, delivered, address in transits
    ]
    today = now.astimezone(ZoneInfo(options.default_timezone)).date()
    return Snapshot(
        transit=learn_transit(
            samples,
            default_days=options.default_transit_days,
            min_samples=options.min_transit_samples,
        ),
        disruptions=active_disruptions(rulebook, declared, today=today, calendar=options.calendar),
        series=group_series(lines),
        in_transit=in_transit,
    )


def zone(
    timezone: str | None, phone: str | None, address: dict[str, Any] | Any, default: str
) -> ZoneInfo:
    """The customer's zone, as the planner would pick it."""
    country = address.get("country") if address else None
    return ZoneInfo(
        zone_for(
            customer_zone=timezone,
            phone=normalize_phone(phone, country),
            country=country,
            default=default,
        )
    )


def local_date(moment: datetime, tz: ZoneInfo) -> str:
    """The local calendar day of ``moment`` in ``tz``, ``YYYY-MM-DD``."""
    return moment.astimezone(tz).date().isoformat()


def last_day(moment: datetime, tz: ZoneInfo) -> str:
    """The last local day that ends at or before ``moment`` (an exclusive end), ``YYYY-MM-DD``."""
    return (moment.astimezone(tz) - timedelta(microseconds=1)).date().isoformat()


def restock_fields(series: Series, seen: Outlook, tz: ZoneInfo) -> dict[str, Any]:
    """What a restock template says: the product, the run-out day, when to order by."""
    run_out = seen.run_out
    last = next(p for p in series.purchases if p.order_id == run_out.order_id)
    return {
        "sku": series.sku,
        "title": series.title,
        "quantity": last.quantity,
        "run_out_on": local_date(run_out.run_out_at, tz),
        "order_by": local_date(seen.due, tz),
        "transit_days": round(seen.transit_days, 1),
        "days_per_unit": round(run_out.days_per_unit, 2),
        "pulled_earlier": seen.due < seen.normal_due,
    }


def stock_up_fields(series: Series, seen: Outlook, advice: StockUp, tz: ZoneInfo) -> dict[str, Any]:
    """The disruption's keys plus the advice: product, suggested quantity, key dates."""
    window = advice.window
    order_by = window.start - timedelta(days=seen.transit_days + seen.lead_days)
    return {
        **window.disruption.model_dump(mode="json"),
        "sku": series.sku,
        "product": series.title,
        "suggested_quantity": advice.suggested_quantity,
        "run_out_on": local_date(seen.run_out.run_out_at, tz),
        "order_by": local_date(max(order_by, advice.notify_at), tz),
        "normal_again_on": local_date(window.normal_again, tz),
    }


class ForecastWatcher(Watcher):
    """A watcher that reads the rulebook and the order history with the forecast options."""

    interval = timedelta(hours=1)  # forecasts move in days; the send window holds the rest

    def __init__(
        self,
        *,
        db: Database,
        rules: Callable[[], Rulebook],
        options: ForecastOptions | None = None,
    ) -> None:
        self.db = db
        self.rules = rules
        self.options = options or ForecastOptions()
