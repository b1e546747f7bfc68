"""AfterShip tracking webhooks: the ``tracking_update`` envelope and its ``msg`` tracking.

Each update becomes one ``shipment.updated``. The shipment id is derived from the carrier slug
and tracking number; the web layer then joins it to a shipment the store already knows by
tracking number (see ``carebot.store.lookups``), which carries the order.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from carebot.events import Event, EventType, Shipment, ShipmentStatus
from carebot.exceptions import SourceError
from carebot.sources._common import as_dict, parse_time, text

__all__ = ["SIGNATURE_HEADER", "TAG_STATUSES", "delivery_id", "map_webhook", "shipment_id"]

SIGNATURE_HEADER = "aftership-hmac-sha256"

TAG_STATUSES: dict[str, ShipmentStatus] = {
    "InfoReceived": ShipmentStatus.IN_TRANSIT,
    "InTransit": ShipmentStatus.IN_TRANSIT,
    "OutForDelivery": ShipmentStatus.OUT_FOR_DELIVERY,
    "AttemptFail": ShipmentStatus.FAILED_ATTEMPT,
    "Delivered": ShipmentStatus.DELIVERED,
    "AvailableForPickup": ShipmentStatus.AVAILABLE_FOR_PICKUP,
    "Exception": ShipmentStatus.EXCEPTION,
    "Expired": ShipmentStatus.EXCEPTION,
}


def shipment_id(slug: str | None, tracking_number: str) -> str:
    """The stable id of a tracking the store does not know yet."""
    return f"aftership-{(slug or 'unknown').lower()}-{tracking_number.upper()}"


def delivery_id(payload: Any) -> str | None:
    """AfterShip's ``event_id``, when the body has one."""
    return text(payload.get("event_id")) if isinstance(payload, dict) else None


def _date(value: Any) -> date | None:
    raw = text(value)
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw[:10])
    except ValueError:
        return None


def _expected(msg: dict[str, Any]) -> date | None:
    latest = msg.get("latest_estimated_delivery")
    estimate = msg.get("aftership_estimated_delivery_date")
    candidates = [
        msg.get("expected_delivery"),
        latest.get("datetime") if isinstance(latest, dict) else None,
        estimate.get("estimated_delivery_date") if isinstance(estimate, dict) else estimate,
    ]
    for value in candidates:
        found = _date(value)
        if found is not None:
            return found
    return None


def _last_checkpoint_time(msg: dict[str, Any]) -> datetime | None:
    """The newest checkpoint time that carries an offset (carrier-local times do not)."""
    times = [
        parse_time(c.get("checkpoint_time"), naive_as_utc=False)
        for c in msg.get("checkpoints") or []
        if isinstance(c, dict)
    ]
    aware = [t for t in times if t is not None]
    return max(aware) if aware else None


def map_webhook(headers: Mapping[str, str], payload: Any) -> list[Event]:
    """The canonical events of one AfterShip delivery (empty for events it does not track)."""
    del headers  # AfterShip carries everything in the body
    data = as_dict(payload, "AfterShip payload")
    if text(data.get("event")) not in (None, "tracking_update"):
        return []
    msg = as_dict(data.get("msg"), "msg")
    tracking = text(msg.get("tracking_number"))
    if tracking is None:
        raise SourceError("msg.tracking_number is missing")
    tag = text(msg.get("tag"))
    if tag is None:
        raise SourceError("msg.tag is missing")
    if tag == "Pending":
        return []
    status = TAG_STATUSES.get(tag)
    if status is None:
        raise SourceError(f"unknown AfterShip tag {tag!r}")
    slug = text(msg.get("slug"))
    scan = _last_checkpoint_time(msg)
    ts = data.get("ts")
    occurred = (
        scan
        or parse_time(msg.get("updated_at"), naive_as_utc=False)
        or (datetime.fromtimestamp(ts, UTC) if isinstance(ts, int | float) else None)
    )
    if occurred is None:
        raise SourceError("no checkpoint time, msg.updated_at or ts to date the update")
    event_id = text(data.get("event_id")) or f"{slug}:{tracking}:{occurred.isoformat()}"
    return [
        Event(
            # The tag is part of the id: one tracking's updates must never collapse into one.
            id=f"aftership:{event_id}:{tag}",
            type=EventType.SHIPMENT_UPDATED,
            occurred_at=occurred,
            shipment=Shipment(
                id=shipment_id(slug, tracking),
                order_id=text(msg.get("order_id")),
                carrier=slug,
                tracking_number=tracking,
                status=status,
                expected_delivery=_expected(msg),
                last_scan_at=scan,
            ),
        )
    ]
