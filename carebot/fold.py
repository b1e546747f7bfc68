"""The merge rules: stored state + one event -> new state. Pure: no I/O, no clock.

Events arrive late, twice and out of order. Order status only moves forward (cancelled and
refunded are final); a shipment's status follows the newest event by ``occurred_at`` and
``delivered`` (or ``cancelled``) is final; partial events fill in only the fields they carry.

States are the rows as stored (``ORDER_COLUMNS``, ``SHIPMENT_COLUMNS``): the store reads them,
folds the event in and writes them back; ``preview`` folds one event into an empty state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from carebot.events import Customer, Event, EventType, ShipmentStatus

__all__ = [
    "CUSTOMER_FIELDS",
    "DELIVERED",
    "FINAL_ORDER_STATUSES",
    "FINAL_SHIPMENT_STATUSES",
    "ORDER_COLUMNS",
    "SHIPMENT_COLUMNS",
    "FoldedState",
    "StoredState",
    "customer_key",
    "customer_merge_key",
    "fold",
    "fold_customer",
    "fold_items",
    "fold_order",
    "fold_shipment",
]

ORDER_STATUS_FOR = {
    EventType.ORDER_PLACED: "placed",
    EventType.ORDER_PAID: "paid",
    EventType.ORDER_SHIPPED: "shipped",
    EventType.ORDER_DELIVERED: "delivered",
    EventType.ORDER_CANCELLED: "cancelled",
    EventType.ORDER_REFUNDED: "refunded",
}
_ORDER_RANK = {"placed": 0, "paid": 1, "shipped": 2, "delivered": 3}
FINAL_ORDER_STATUSES = frozenset({"cancelled", "refunded"})
DELIVERED = str(ShipmentStatus.DELIVERED)
CANCELLED = str(ShipmentStatus.CANCELLED)
# A shipment in one of these statuses keeps it, whatever arrives later.
FINAL_SHIPMENT_STATUSES = frozenset({DELIVERED, CANCELLED})

CUSTOMER_FIELDS = ("name", "phone", "email", "locale", "timezone")
# What the store keeps of an order and of a shipment (besides id and timestamps).
ORDER_COLUMNS = (
    "number",
    "customer_id",
    "placed_at",
    "total",
    "currency",
    "status",
    "status_at",
    "shipping_address",
    "billing_address",
    "delivered_at",
)
SHIPMENT_COLUMNS = (
    "order_id",
    "carrier",
    "tracking_number",
    "tracking_url",
    "status",
    "status_at",
    "expected_delivery",
    "last_scan_at",
    "shipped_at",
    "delivered_at",
)
_SHIPMENT_DETAILS = ("carrier", "tracking_number", "tracking_url", "expected_delivery")
_ADDRESSES = ("shipping_address", "billing_address")


# --- customers ----------------------------------------------------------------------------------


def customer_key(customer: Customer) -> str | None:
    """The stored id of ``customer``: the platform's, else by email, else by phone."""
    if customer.id:
        return customer.id
    if customer.email:
        return f"email:{customer.email.lower()}"
    if customer.phone:
        return f"phone:{customer.phone}"
    return None


def fold_customer(stored: Mapping[str, Any] | None, customer: Customer, key: str) -> dict[str, Any]:
    """The customer after the merge: a field the event does not carry keeps what is stored.

    The store runs the same rule as one upsert statement (``COALESCE``).
    """
    row: dict[str, Any] = {"id": key}
    for name in CUSTOMER_FIELDS:
        value = getattr(customer, name)
        row[name] = value if value is not None else (stored or {}).get(name)
    return row


# --- orders -------------------------------------------------------------------------------------


def _fold_order_status(row: dict[str, Any], event: Event) -> None:
    new = ORDER_STATUS_FOR.get(event.type)
    if new is None or row["status"] in FINAL_ORDER_STATUSES:
        return
    if new in FINAL_ORDER_STATUSES or _ORDER_RANK[new] > _ORDER_RANK.get(row["status"], 0):
        row["status"] = new
        row["status_at"] = event.occurred_at
        if new == "delivered" and row["delivered_at"] is None:
            row["delivered_at"] = event.occurred_at


def _fold_order_fields(row: dict[str, Any], event: Event) -> None:
    order = event.order
    if order is None:
        return
    given = {
        "placed_at": order.placed_at,
        "total": None if order.total is None else str(order.total),
        "currency": order.currency,
        "number": order.number,
    }
    row.update((name, value) for name, value in given.items() if value is not None)
    for name in _ADDRESSES:
        address = getattr(order, name)
        if address is not None:
            merged = dict(row[name] or {})
            merged.update(address.model_dump(mode="json", exclude_none=True))
            row[name] = merged


def fold_order(stored: Mapping[Any, Any] | None, event: Event) -> dict[str, Any]:
    """The order row (``ORDER_COLUMNS``) after ``event``; a new order starts ``placed``.

    ``customer_id`` is kept as stored: the customer is merged on its own (``fold_customer``).
    """
    row: dict[str, Any] = dict.fromkeys(ORDER_COLUMNS)
    if stored is None:
        row["status"] = "placed"
    else:
        row.update(stored)
    _fold_order_fields(row, event)
    _fold_order_status(row, event)
    return row


def fold_items(order_id: str, event: Event) -> list[dict[str, Any]] | None:
    """The order's line items when the event carries them (they replace the stored ones)."""
    if event.order is None or event.order.items is None:
        return None
    return [
        {
            "order_id": order_id,
            "position": i,
            "sku": item.sku,
            "title": item.title,
            "quantity": item.quantity,
            "unit_price": None if item.unit_price is None else str(item.unit_price),
            "tags": list(item.tags),
        }
        for i, item in enumerate(event.order.items)
    ]


# --- shipments ----------------------------------------------------------------------------------


def implied_shipment_status(event: Event) -> ShipmentStatus | None:
    """The shipment status the event states, or implies (shipped: in transit)."""
    if event.shipment is not None and event.shipment.status is not None:
        return event.shipment.status
    if event.type == EventType.ORDER_SHIPPED:
        return ShipmentStatus.IN_TRANSIT
    if event.type == EventType.ORDER_DELIVERED:
        return ShipmentStatus.DELIVERED
    return None


def _fold_shipment_details(row: dict[str, Any], event: Event, stale: bool) -> None:
    shipment = event.shipment
    assert shipment is not None
    # Carriers' updates arrive out of order: an older one fills in what is missing and never
    # overwrites what a newer one said (its expected delivery, its carrier name).
    for name in _SHIPMENT_DETAILS:
        value = getattr(shipment, name)
        if value is not None and not (stale and row[name] is not None):
            row[name] = value
    if event.type == EventType.ORDER_SHIPPED and row["shipped_at"] is None:
        row["shipped_at"] = event.occurred_at
    scan = shipment.last_scan_at
    if scan is None and event.type == EventType.SHIPMENT_UPDATED:
        scan = event.occurred_at
    if scan is not None and (row["last_scan_at"] is None or scan > row["last_scan_at"]):
        row["last_scan_at"] = scan


def _fold_shipment_status(row: dict[str, Any], event: Event) -> None:
    at = event.occurred_at
    status = implied_shipment_status(event)
    newer = row["status_at"] is None or at >= row["status_at"]
    if status is not None and row["status"] not in FINAL_SHIPMENT_STATUSES and newer:
        row.update(status=str(status), status_at=at)
        if status == ShipmentStatus.DELIVERED:
            row["delivered_at"] = at
    # A shipment's order_id always names a stored order: when the whole order arrived, so did
    # this shipment.
    if (
        event.type == EventType.ORDER_DELIVERED
        and row["order_id"] is not None
        and row["status"] not in FINAL_SHIPMENT_STATUSES
    ):
        row.update(status=DELIVERED, status_at=at, delivered_at=at)


def fold_shipment(
    stored: Mapping[Any, Any] | None, event: Event, order_id: str | None
) -> tuple[dict[str, Any], bool]:
    """The row (``SHIPMENT_COLUMNS``) of the event's shipment after ``event``, and whether the
    event was older than the stored status (stale). ``order_id``: the order the event names."""
    row: dict[str, Any] = dict.fromkeys(SHIPMENT_COLUMNS)
    if stored is not None:
        row.update(stored)
    stale = row["status_at"] is not None and event.occurred_at < row["status_at"]
    if order_id is not None:
        row["order_id"] = order_id
    _fold_shipment_details(row, event, stale)
    _fold_shipment_status(row, event)
    return row, stale


# --- the whole state ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredState:
    """What is stored of the event's order, shipment and customer (None: nothing yet)."""

    order: Mapping[str, Any] | None = None
    shipment: Mapping[str, Any] | None = None
    customer: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class FoldedState:
    order: dict[str, Any] | None
    shipment: dict[str, Any] | None
    customer: dict[str, Any] | None
    items: list[dict[str, Any]] | None
    # The event was older than the stored shipment status.
    stale: bool = False


def customer_merge_key(customer: Customer, existing_id: str | None) -> str | None:
    """The stored customer ``customer`` merges into: the order's own, unless the event names
    the platform's id (a key without one adds nothing to the order's customer)."""
    return existing_id if existing_id and not customer.id else customer_key(customer)


def _fold_customers(
    stored: Mapping[str, Any] | None, event: Event, order: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The customer after the order's and then the event's own are merged in."""
    customer: dict[str, Any] | None = None
    for named in (event.order.customer if event.order is not None else None, event.customer):
        if named is None:
            continue
        key = customer_merge_key(named, order["customer_id"] if order is not None else None)
        if key is None:
            continue
        before = customer if customer is not None and customer["id"] == key else stored
        customer = fold_customer(before, named, key)
        if order is not None:
            order["customer_id"] = key
    return customer


def fold(stored: StoredState, event: Event) -> FoldedState:
    """``stored`` after ``event``: order, shipment, customer and line items."""
    order_id = event.order_id
    order = fold_order(stored.order, event) if order_id is not None else None
    customer = _fold_customers(stored.customer, event, order)
    shipment, stale = (
        fold_shipment(stored.shipment, event, order_id) if event.shipment else (None, False)
    )
    items = fold_items(order_id, event) if order_id is not None else None
    return FoldedState(order=order, shipment=shipment, customer=customer, items=items, stale=stale)
