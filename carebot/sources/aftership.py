"""AfterShip tracking webhooks: the ``tracking_update`` envelope and its ``msg`` tracking.

Each update becomes one ``shipment.updated``. The shipment id is derived from the carrier slug
and tracking number; the web layer then joins it to a shipment the store already knows by
tracking number, else to the order named by ``order_id`` / ``order_number`` (see
``carebot.web.platforms.join_known_shipments``). A tracking of an order carebot does not know
creates it from ``order_id``, ``order_number``, ``customer_name``, ``emails``, ``smses`` and
``title``.

``Expired`` (AfterShip stopped following the parcel) becomes the status ``expired``: the
watchers stop watching it and no sample rule writes to the customer about it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from carebot.events import (
    Address,
    Customer,
    Event,
    EventType,
    LineItem,
    Order,
    Shipment,
    ShipmentStatus,
)
from carebot.exceptions import SourceError
from carebot.sources._common import as_dict, parse_time, text
from carebot.sources.couriers import courier_name

__all__ = [
    "ORDER_ID_PREFIX",
    "SIGNATURE_HEADER",
    "TAG_STATUSES",
    "delivery_id",
    "map_webhook",
    "shipment_id",
]

# The id of an order known only by AfterShip's ``order_number``: the shop's own order, when it
# arrives with the same tracking number, takes the parcel over.
ORDER_ID_PREFIX = "aftership-order-"

SIGNATURE_HEADER = "aftership-hmac-sha256"

TAG_STATUSES: dict[str, ShipmentStatus] = {
    "InfoReceived": ShipmentStatus.IN_TRANSIT,
    "InTransit": ShipmentStatus.IN_TRANSIT,
    "OutForDelivery": ShipmentStatus.OUT_FOR_DELIVERY,
    "AttemptFail": ShipmentStatus.FAILED_ATTEMPT,
    "Delivered": ShipmentStatus.DELIVERED,
    "AvailableForPickup": ShipmentStatus.AVAILABLE_FOR_PICKUP,
    "Exception": ShipmentStatus.EXCEPTION,
    "Expired": ShipmentStatus.EXPIRED,
}

# ``destination_country_iso3`` → ISO 3166 alpha-2, for the countries shops ship to most; an
# unlisted one leaves the country unknown (the customer's locale then falls back).
_ISO3_TO_ISO2 = {
    "CHN": "CN", "HKG": "HK", "MAC": "MO", "TWN": "TW", "USA": "US", "CAN": "CA",
    "MEX": "MX", "BRA": "BR", "ARG": "AR", "CHL": "CL", "COL": "CO", "GBR": "GB",
    "IRL": "IE", "FRA": "FR", "DEU": "DE", "ESP": "ES", "PRT": "PT", "ITA": "IT",
    "NLD": "NL", "BEL": "BE", "LUX": "LU", "CHE": "CH", "AUT": "AT", "SWE": "SE",
    "NOR": "NO", "DNK": "DK", "FIN": "FI", "POL": "PL", "CZE": "CZ", "RUS": "RU",
    "TUR": "TR", "ISR": "IL", "ARE": "AE", "SAU": "SA", "ZAF": "ZA", "AUS": "AU",
    "NZL": "NZ", "JPN": "JP", "KOR": "KR", "SGP": "SG", "MYS": "MY", "THA": "TH",
    "VNM": "VN", "PHL": "PH", "IDN": "ID", "IND": "IN",
}  # fmt: skip


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


def _first_text(value: Any) -> str | None:
    """The first non-empty string of a list (``emails``, ``smses``), or the string itself."""
    if isinstance(value, list):
        return next((t for v in value if (t := text(v)) is not None), None)
    return text(value) if isinstance(value, str) else None


def _order(msg: dict[str, Any], tracking: str) -> Order | None:
    """The order a tracking names, with what AfterShip knows of its customer."""
    order_id = text(msg.get("order_id"))
    number = text(msg.get("order_number"))
    if order_id is None and number is None:
        return None
    name = text(msg.get("customer_name"))
    email = _first_text(msg.get("emails"))
    phone = _first_text(msg.get("smses"))
    customer = Customer(name=name, email=email, phone=phone) if name or email or phone else None
    country = _ISO3_TO_ISO2.get((text(msg.get("destination_country_iso3")) or "").upper())
    title = text(msg.get("title"))
    items = None
    if title and title not in {tracking, order_id, number}:
        items = [LineItem(title=title)]
    return Order(
        id=order_id or f"{ORDER_ID_PREFIX}{number}",
        number=number,
        customer=customer,
        shipping_address=Address(country=country) if country else None,
        items=items,
    )


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
    if not isinstance(msg.get("checkpoints", []), list | None):
        raise SourceError("msg.checkpoints is not a list")
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
    order = _order(msg, tracking)
    return [
        Event(
            # The tag is part of the id: one tracking's updates must never collapse into one.
            id=f"aftership:{event_id}:{tag}",
            type=EventType.SHIPMENT_UPDATED,
            occurred_at=occurred,
            order=order,
            shipment=Shipment(
                id=shipment_id(slug, tracking),
                order_id=order.id if order else None,
                carrier=courier_name(slug),
                tracking_number=tracking,
                tracking_url=text(msg.get("courier_tracking_link"))
                or text(msg.get("aftership_tracking_url")),
                status=status,
                expected_delivery=_expected(msg),
                last_scan_at=scan,
            ),
        )
    ]
