"""Reading what the store knows around an event: one order, its customer, items and shipments."""

from __future__ import annotations

from typing import Any

from sqlalchemy import RowMapping
from sqlalchemy.orm import Session

from carebot.facts import CustomerFacts, Facts, ItemFacts, OrderFacts, ShipmentFacts, iso
from carebot.store import entity_sql as sql

__all__ = ["load_facts"]


def _shipment(row: RowMapping) -> ShipmentFacts:
    return ShipmentFacts(*(iso(row[name]) for name in sql.SHIPMENT_FACTS))


def _order(row: RowMapping) -> OrderFacts:
    return OrderFacts(*(iso(row[f"order_{name}"]) for name in sql.ORDER_FACTS))


def _customer(row: RowMapping) -> CustomerFacts | None:
    if row["customer_id"] is None:
        return None
    return CustomerFacts(*(row[f"customer_{name}"] for name in sql.CUSTOMER_FACTS))


def _items(session: Session, order_id: str) -> list[ItemFacts]:
    rows = session.connection().execute(sql.LOAD_ITEMS, {"order_id": order_id})
    return [
        ItemFacts(
            sku=item.sku,
            title=item.title,
            quantity=item.quantity,
            unit_price=item.unit_price,
            tags=tuple(item.tags or ()),
        )
        for item in rows
    ]


def _lone_shipment(session: Session, shipment_id: str) -> ShipmentFacts | None:
    found = session.connection().execute(sql.LOAD_SHIPMENT, {"id": shipment_id}).one_or_none()
    return _shipment(found._mapping) if found else None


def load_facts(session: Session, *, order_id: str | None, shipment_id: str | None) -> Facts:
    """Everything the planner may need about an order and one of its shipments."""
    rows: list[Any] = []
    if order_id:
        rows = list(session.connection().execute(sql.LOAD_ORDER, {"order_id": order_id}))
    shipments = [_shipment(row._mapping) for row in rows if row.id is not None]
    shipment = next((s for s in shipments if s.id == shipment_id), None)
    if shipment is None and shipment_id:
        shipment = _lone_shipment(session, shipment_id)
    if not rows or order_id is None:
        return Facts(shipment=shipment)
    first = rows[0]._mapping
    return Facts(
        order=_order(first),
        customer=_customer(first),
        shipping_address=dict(first["order_shipping_address"] or {}),
        billing_address=dict(first["order_billing_address"] or {}),
        shipment=shipment,
        shipments=shipments,
        items=_items(session, order_id),
    )
