"""Merging events into what the store knows of customers, orders and shipments.

Events arrive late, twice and out of order. Order status only moves forward (cancelled and
refunded are final); a shipment's status follows the newest event by ``occurred_at`` and
``delivered`` is final; partial events fill in only the fields they carry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from carebot.events import Customer, Event, EventType, ShipmentStatus
from carebot.store._upsert import insert_ignore
from carebot.store.models import (
    CustomerRow,
    EventRow,
    LineItemRow,
    OrderRow,
    RejectedPayloadRow,
    ShipmentRow,
)

__all__ = ["Facts", "MergeResult", "load_facts", "merge_event", "record_event", "reject_payload"]

_ORDER_STATUS_FOR = {
    EventType.ORDER_PLACED: "placed",
    EventType.ORDER_PAID: "paid",
    EventType.ORDER_SHIPPED: "shipped",
    EventType.ORDER_DELIVERED: "delivered",
    EventType.ORDER_CANCELLED: "cancelled",
    EventType.ORDER_REFUNDED: "refunded",
}
_ORDER_RANK = {"placed": 0, "paid": 1, "shipped": 2, "delivered": 3}
_FINAL_ORDER_STATUSES = frozenset({"cancelled", "refunded"})


@dataclass(frozen=True)
class Facts:
    """What the store knows around one event, as plain JSON-friendly values."""

    order: dict[str, Any] | None = None
    customer: dict[str, Any] | None = None
    shipping_address: dict[str, Any] | None = None
    shipment: dict[str, Any] | None = None
    shipments: list[dict[str, Any]] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class MergeResult:
    order_id: str | None
    shipment_id: str | None
    # True when this event made the last undelivered shipment of the order delivered.
    order_now_delivered: bool = False


def record_event(
    session: Session,
    event: Event,
    *,
    source: str,
    received_at: datetime,
    delivery_id: str | None = None,
) -> bool:
    """Store ``event`` once per (source, id); return False when it was already stored."""
    shipment_id = event.shipment.id if event.shipment else None
    statement = (
        insert_ignore(session, EventRow, ["source", "event_id"])
        .values(
            source=source,
            event_id=event.id,
            delivery_id=delivery_id,
            type=str(event.type),
            occurred_at=event.occurred_at,
            received_at=received_at,
            order_id=event.order_id,
            shipment_id=shipment_id,
            payload=event.model_dump(mode="json", by_alias=True, exclude_none=True),
        )
        .returning(EventRow.id)
    )
    return session.execute(statement).scalar_one_or_none() is not None


def reject_payload(
    session: Session,
    *,
    source: str,
    reason: str,
    headers: dict[str, str],
    body: bytes,
    received_at: datetime,
) -> None:
    """Keep an authentic payload that could not be understood, for the merchant to inspect."""
    session.add(
        RejectedPayloadRow(
            source=source, reason=reason, headers=headers, body=body, received_at=received_at
        )
    )


def _customer_key(customer: Customer) -> str | None:
    if customer.id:
        return customer.id
    if customer.email:
        return f"email:{customer.email.lower()}"
    if customer.phone:
        return f"phone:{customer.phone}"
    return None


def _merge_customer(
    session: Session, customer: Customer, now: datetime, existing_id: str | None
) -> str | None:
    key = existing_id if existing_id and not customer.id else _customer_key(customer)
    if key is None:
        return existing_id
    row = session.get(CustomerRow, key)
    if row is None:
        row = CustomerRow(id=key, created_at=now, updated_at=now)
        session.add(row)
    for name in ("name", "phone", "email", "locale", "timezone"):
        value = getattr(customer, name)
        if value is not None:
            setattr(row, name, value)
    row.updated_at = now
    return key


def _order_row(session: Session, order_id: str, now: datetime) -> OrderRow:
    row = session.get(OrderRow, order_id)
    if row is None:
        row = OrderRow(id=order_id, status="placed", created_at=now, updated_at=now)
        session.add(row)
        session.flush()
    return row


def _apply_order_status(row: OrderRow, event: Event) -> None:
    new = _ORDER_STATUS_FOR.get(event.type)
    if new is None or row.status in _FINAL_ORDER_STATUSES:
        return
    if new in _FINAL_ORDER_STATUSES or _ORDER_RANK[new] > _ORDER_RANK.get(row.status, 0):
        row.status = new
        row.status_at = event.occurred_at
        if new == "delivered" and row.delivered_at is None:
            row.delivered_at = event.occurred_at


def _merge_order(session: Session, event: Event, now: datetime) -> OrderRow | None:
    order_id = event.order_id
    if order_id is None:
        return None
    row = _order_row(session, order_id, now)
    order = event.order
    if order is not None:
        if order.placed_at is not None:
            row.placed_at = order.placed_at
        if order.total is not None:
            row.total = str(order.total)
        if order.currency is not None:
            row.currency = order.currency
        if order.shipping_address is not None:
            merged = dict(row.shipping_address or {})
            merged.update(order.shipping_address.model_dump(mode="json", exclude_none=True))
            row.shipping_address = merged
        if order.items is not None:
            row.items = [
                LineItemRow(
                    position=i,
                    sku=item.sku,
                    title=item.title,
                    quantity=item.quantity,
                    unit_price=None if item.unit_price is None else str(item.unit_price),
                    tags=list(item.tags),
                )
                for i, item in enumerate(order.items)
            ]
        if order.customer is not None:
            row.customer_id = _merge_customer(session, order.customer, now, row.customer_id)
    if event.customer is not None:
        row.customer_id = _merge_customer(session, event.customer, now, row.customer_id)
    _apply_order_status(row, event)
    row.updated_at = now
    return row


def _implied_shipment_status(event: Event) -> ShipmentStatus | None:
    if event.shipment is not None and event.shipment.status is not None:
        return event.shipment.status
    if event.type == EventType.ORDER_SHIPPED:
        return ShipmentStatus.IN_TRANSIT
    if event.type == EventType.ORDER_DELIVERED:
        return ShipmentStatus.DELIVERED
    return None


def _merge_shipment(
    session: Session, event: Event, order: OrderRow | None, now: datetime
) -> ShipmentRow | None:
    shipment = event.shipment
    if shipment is None:
        return None
    row = session.get(ShipmentRow, shipment.id)
    if row is None:
        row = ShipmentRow(id=shipment.id, created_at=now, updated_at=now)
        session.add(row)
    if order is not None:
        row.order_id = order.id
    for name in ("carrier", "tracking_number", "expected_delivery"):
        value = getattr(shipment, name)
        if value is not None:
            setattr(row, name, value)
    if event.type == EventType.ORDER_SHIPPED and row.shipped_at is None:
        row.shipped_at = event.occurred_at
    scan = shipment.last_scan_at
    if scan is None and event.type == EventType.SHIPMENT_UPDATED:
        scan = event.occurred_at
    if scan is not None and (row.last_scan_at is None or scan > row.last_scan_at):
        row.last_scan_at = scan
    status = _implied_shipment_status(event)
    newer = row.status_at is None or event.occurred_at >= row.status_at
    if status is not None and row.status != ShipmentStatus.DELIVERED and newer:
        row.status = str(status)
        row.status_at = event.occurred_at
        if status == ShipmentStatus.DELIVERED:
            row.delivered_at = event.occurred_at
    row.updated_at = now
    session.flush()
    return row


def merge_event(session: Session, event: Event, *, now: datetime) -> MergeResult:
    """Fold ``event`` into the stored customer, order and shipment."""
    order = _merge_order(session, event, now)
    if event.customer is not None and order is None:
        _merge_customer(session, event.customer, now, None)
    shipment = _merge_shipment(session, event, order, now)
    if order is None and shipment is not None and shipment.order_id is not None:
        # A carrier update names only its shipment; the order is the one the store knows.
        order = session.get(OrderRow, shipment.order_id)
    if event.type == EventType.ORDER_DELIVERED and order is not None:
        # The source says the whole order arrived: so did every shipment of it.
        for other in session.scalars(select(ShipmentRow).where(ShipmentRow.order_id == order.id)):
            if other.status != ShipmentStatus.DELIVERED:
                other.status = str(ShipmentStatus.DELIVERED)
                other.status_at = event.occurred_at
                other.delivered_at = event.occurred_at
    now_delivered = False
    if (
        order is not None
        and shipment is not None
        and shipment.status == ShipmentStatus.DELIVERED
        and order.status not in _FINAL_ORDER_STATUSES
        and order.status != "delivered"
    ):
        statuses = session.scalars(
            select(ShipmentRow.status).where(ShipmentRow.order_id == order.id)
        ).all()
        now_delivered = all(s == ShipmentStatus.DELIVERED for s in statuses)
    return MergeResult(
        order_id=order.id if order else event.order_id,
        shipment_id=shipment.id if shipment else None,
        order_now_delivered=now_delivered,
    )


def _iso(value: Any) -> Any:
    return value.isoformat() if value is not None and hasattr(value, "isoformat") else value


def _shipment_facts(row: ShipmentRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "carrier": row.carrier,
        "tracking_number": row.tracking_number,
        "status": row.status,
        "expected_delivery": _iso(row.expected_delivery),
        "last_scan_at": _iso(row.last_scan_at),
        "shipped_at": _iso(row.shipped_at),
        "delivered_at": _iso(row.delivered_at),
    }


def load_facts(session: Session, *, order_id: str | None, shipment_id: str | None) -> Facts:
    """Everything the planner may need about an order and one of its shipments."""
    order = session.get(OrderRow, order_id) if order_id else None
    shipment = session.get(ShipmentRow, shipment_id) if shipment_id else None
    if order is None:
        return Facts(shipment=_shipment_facts(shipment) if shipment else None)
    session.refresh(order, ["shipments"])
    customer = order.customer
    return Facts(
        order={
            "id": order.id,
            "placed_at": _iso(order.placed_at),
            "total": order.total,
            "currency": order.currency,
            "status": order.status,
            "delivered_at": _iso(order.delivered_at),
        },
        customer=None
        if customer is None
        else {
            "id": customer.id,
            "name": customer.name,
            "phone": customer.phone,
            "email": customer.email,
            "locale": customer.locale,
            "timezone": customer.timezone,
        },
        shipping_address=dict(order.shipping_address or {}),
        shipment=_shipment_facts(shipment) if shipment else None,
        shipments=[_shipment_facts(s) for s in order.shipments],
        items=[
            {
                "sku": item.sku,
                "title": item.title,
                "quantity": item.quantity,
                "unit_price": item.unit_price,
                "tags": list(item.tags or []),
            }
            for item in order.items
        ],
    )
