"""Shipments in trouble: stalled (no carrier scan for too long) and late (past the expected day).

Each emits one derived event per shipment, ever (``stalled:<shipment>``, ``late:<shipment>``),
dated at the instant the condition became true, so that the replay and the daemon plan the
same message whatever their tick. A delivered shipment, or one of a cancelled, refunded or
delivered order, is not watched; a later scan or delivery cancels a pending delay warning
through the rules' ``cancel_on``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from carebot.contacts import normalize_phone, zone_for
from carebot.events import Event, EventType, Order, Shipment, ShipmentStatus
from carebot.store.database import Database
from carebot.store.watch_queries import WatchedShipment, unreported_shipments
from carebot.watchers.base import Watcher

__all__ = ["LateShipments", "StalledShipments", "carrier_key"]

DEFAULT_INTERVAL = timedelta(minutes=10)

# A parcel waiting at a pickup point, or held for an exception or a failed attempt, has its
# own notice; "no scan for two days" is news only for a parcel that should be moving.
_MOVING = (ShipmentStatus.IN_TRANSIT, ShipmentStatus.OUT_FOR_DELIVERY)
_NOT_DELIVERED = (
    ShipmentStatus.PENDING,
    ShipmentStatus.IN_TRANSIT,
    ShipmentStatus.OUT_FOR_DELIVERY,
    ShipmentStatus.FAILED_ATTEMPT,
    ShipmentStatus.EXCEPTION,
)


def carrier_key(carrier: str | None) -> str:
    """``SF Express``, ``sf-express`` and ``sfexpress`` name the same carrier."""
    return re.sub(r"[^a-z0-9]", "", (carrier or "").lower())


def _event(kind: EventType, prefix: str, shipment: WatchedShipment, at: datetime) -> Event:
    return Event(
        id=f"{prefix}:{shipment.id}",
        type=kind,
        occurred_at=at,
        order=Order(id=shipment.order_id),
        shipment=Shipment(id=shipment.id, order_id=shipment.order_id),
    )


class _ShipmentWatcher(Watcher):
    """Shipments in ``watched`` statuses that this watcher has not yet reported as ``reports``."""

    db: Database
    watched: tuple[ShipmentStatus, ...]
    reports: EventType

    def _candidates(
        self, *, seen_before: datetime | None = None, expected_before: date | None = None
    ) -> list[WatchedShipment]:
        with self.db.transaction() as session:
            return unreported_shipments(
                session,
                statuses=[str(s) for s in self.watched],
                source=self.source,
                event_type=self.reports,
                seen_before=seen_before,
                expected_before=expected_before,
            )


class StalledShipments(_ShipmentWatcher):
    """``shipment.stalled``: no carrier scan (or, never scanned, no scan since shipping)."""

    name = "stalled_shipments"
    watched = _MOVING
    reports = EventType.SHIPMENT_STALLED

    def __init__(
        self,
        *,
        db: Database,
        stall_after: timedelta = timedelta(hours=48),
        carrier_stall_after: Mapping[str, timedelta] | None = None,
        interval: timedelta = DEFAULT_INTERVAL,
    ) -> None:
        self.db = db
        self.stall_after = stall_after
        self.carrier_stall_after = {
            carrier_key(name): after for name, after in (carrier_stall_after or {}).items()
        }
        self.interval = interval

    def threshold(self, carrier: str | None) -> timedelta:
        """How long ``carrier`` may go without a scan before its parcel counts as stalled."""
        return self.carrier_stall_after.get(carrier_key(carrier), self.stall_after)

    def idle_until(self, *, now: datetime) -> datetime | None:
        return min(
            (
                s.last_seen_at + self.threshold(s.carrier)
                for s in self._candidates()
                if s.last_seen_at is not None
            ),
            default=None,
        )

    def scan(self, *, now: datetime) -> list[Event]:
        shortest = min([self.stall_after, *self.carrier_stall_after.values()])
        events = []
        for shipment in self._candidates(seen_before=now - shortest):
            if shipment.last_seen_at is None:
                continue
            stalled_at = shipment.last_seen_at + self.threshold(shipment.carrier)
            if stalled_at <= now:
                events.append(_event(EventType.SHIPMENT_STALLED, "stalled", shipment, stalled_at))
        return events


class LateShipments(_ShipmentWatcher):
    """``shipment.late``: not delivered by the end of its expected day, in the customer's zone."""

    name = "late_shipments"
    watched = _NOT_DELIVERED
    reports = EventType.SHIPMENT_LATE

    def __init__(
        self,
        *,
        db: Database,
        default_timezone: str = "Asia/Shanghai",
        interval: timedelta = DEFAULT_INTERVAL,
    ) -> None:
        self.db = db
        self.default_timezone = default_timezone
        self.interval = interval

    def deadline(self, shipment: WatchedShipment) -> datetime | None:
        """The end of the expected delivery day where the customer lives (as a UTC instant)."""
        if shipment.expected_delivery is None:
            return None
        zone = zone_for(
            customer_zone=shipment.customer_timezone,
            phone=normalize_phone(shipment.customer_phone, shipment.country),
            country=shipment.country,
            default=self.default_timezone,
        )
        next_day = shipment.expected_delivery + timedelta(days=1)
        return datetime.combine(next_day, time(0), tzinfo=ZoneInfo(zone)).astimezone(UTC)

    def idle_until(self, *, now: datetime) -> datetime | None:
        deadlines = [d for d in map(self.deadline, self._candidates()) if d is not None]
        return min(deadlines, default=None)

    def scan(self, *, now: datetime) -> list[Event]:
        # The furthest-ahead zone (UTC+14) ends its day first: a coarse filter, refined below.
        coarse = (now + timedelta(hours=14)).date()
        events = []
        for shipment in self._candidates(expected_before=coarse):
            deadline = self.deadline(shipment)
            if deadline is not None and deadline <= now:
                events.append(_event(EventType.SHIPMENT_LATE, "late", shipment, deadline))
        return events
