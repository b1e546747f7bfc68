"""Disruption warnings: parcels at risk, and customers to tell to stock up before it starts.

``disruption.shipment_at_risk``: a shipment in transit to a region that a disruption hits before
its expected delivery (``expected_delivery``, else shipped + learned transit time).
``disruption.stock_up``: a customer in the region whose ordinary reorder would meet the
disruption, told ``notice_days`` before its start (at once when declared later), with a
quantity that lasts until deliveries are normal again. Nothing once a disruption has ended.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from carebot.disruptions.active import window_of
from carebot.disruptions.regions import affects_address
from carebot.events import Event, EventType, Order, Shipment
from carebot.forecast.restock import outlook
from carebot.forecast.transit import TransitModel
from carebot.rulebook.schema import Disruption, Rulebook
from carebot.store.history import ShipmentInTransit
from carebot.watchers._forecasting import (
    ForecastWatcher,
    Snapshot,
    last_day,
    local_date,
    restock_fields,
    stock_up_fields,
    take_snapshot,
    zone,
)

__all__ = ["DisruptionWatch"]


class DisruptionWatch(ForecastWatcher):
    """Emits ``disruption.shipment_at_risk`` and ``disruption.stock_up``."""

    name = "disruptions"

    def scan(self, *, now: datetime) -> list[Event]:
        rulebook = self.rules()
        snapshot = take_snapshot(
            self.db, rulebook, now=now, options=self.options, with_in_transit=True
        )
        if not snapshot.disruptions:
            return []
        return [*self._at_risk(snapshot, now), *self._stock_ups(snapshot, rulebook, now)]

    def _at_risk(self, snapshot: Snapshot, now: datetime) -> list[Event]:
        events = []
        for parcel in snapshot.in_transit:
            tz = zone(
                parcel.timezone,
                parcel.phone,
                parcel.shipping_address,
                self.options.default_timezone,
            )
            arrival = _expected_arrival(parcel, snapshot.transit, tz, now)
            for disruption in snapshot.disruptions:
                if not affects_address(disruption, parcel.shipping_address):
                    continue
                window = window_of(disruption, tz)
                if not (window.start < arrival and now < window.end):
                    continue
                if now < window.notice_at():
                    continue
                events.append(
                    Event(
                        id=f"at-risk:{disruption.id}:{parcel.id}",
                        type=EventType.DISRUPTION_SHIPMENT_AT_RISK,
                        occurred_at=max(window.notice_at(), parcel.shipped_at or now),
                        order=Order(id=parcel.order_id),
                        shipment=Shipment(id=parcel.id, order_id=parcel.order_id),
                        disruption={
                            **disruption.model_dump(mode="json"),
                            "expected_delivery": last_day(arrival, tz),
                            "normal_again_on": local_date(window.normal_again, tz),
                        },
                    )
                )
        return events

    def _stock_ups(self, snapshot: Snapshot, rulebook: Rulebook, now: datetime) -> list[Event]:
        events = []
        for series in snapshot.series:
            if not any(affects_address(d, series.shipping_address) for d in snapshot.disruptions):
                continue
            tz = zone(
                series.timezone,
                series.phone,
                series.shipping_address,
                self.options.default_timezone,
            )
            seen = outlook(
                series,
                facts=rulebook.profile_for(series.sku, list(series.tags)),
                transit_days=snapshot.transit.days_to(series.shipping_address),
                disruptions=snapshot.disruptions,
                zone=tz,
            )
            if seen is None:
                continue
            for advice in seen.stock_ups:
                window = advice.window
                # Advice is only useful while an order can still beat the start.
                if not advice.notify_at <= now < window.start:
                    continue
                events.append(
                    Event(
                        id=_stock_up_id(
                            window.disruption, series.customer_id, series.sku, seen.run_out.order_id
                        ),
                        type=EventType.DISRUPTION_STOCK_UP,
                        occurred_at=advice.notify_at,
                        order=Order(id=seen.run_out.order_id),
                        disruption=stock_up_fields(series, seen, advice, tz),
                        restock=restock_fields(series, seen, tz),
                    )
                )
        return events


def _stock_up_id(disruption: Disruption, customer_id: str, sku: str, order_id: str) -> str:
    return f"stock-up:{disruption.id}:{customer_id}:{sku}:{order_id}"


def _expected_arrival(
    parcel: ShipmentInTransit, transit: TransitModel, tz: ZoneInfo, now: datetime
) -> datetime:
    """The end of the expected delivery day, else shipped + learned transit (never before now)."""
    if parcel.expected_delivery is not None:
        day_after = parcel.expected_delivery + timedelta(days=1)
        return datetime.combine(day_after, time(0), tzinfo=tz)
    shipped = parcel.shipped_at or now
    return max(now, shipped + timedelta(days=transit.days_to(parcel.shipping_address)))
