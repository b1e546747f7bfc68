"""Storing events and merging them into what the store knows of customers, orders, shipments.

The merge rules are ``carebot.fold``'s (pure); this module reads the rows an event changes,
folds the event in and writes the rows back whole. This is the hot path of ingest: every
statement is Core, built once (``carebot.store.entity_sql``). A merge reads the order and
shipment rows it changes locked on PostgreSQL, so concurrent events of one order take turns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from carebot import fold
from carebot.events import Customer, Event, EventType
from carebot.facts import Facts, facts_from_rows, shipment_facts
from carebot.store import entity_sql as sql
from carebot.store._upsert import prepared_insert_ignore
from carebot.store.entity_facts import load_facts
from carebot.store.models import RejectedPayloadRow

__all__ = [
    "Facts",
    "MergeResult",
    "facts_for",
    "load_facts",
    "merge_event",
    "record_event",
    "reject_payload",
]

_SETTLED_ORDER_STATUSES = (None, "delivered", *fold.FINAL_ORDER_STATUSES)


@dataclass(frozen=True)
class MergeResult:
    order_id: str | None
    shipment_id: str | None
    # True when this event made the last undelivered shipment of the order delivered.
    order_now_delivered: bool = False
    # True when this event is older than what the store knew of its shipment: it filled in
    # only what was missing, and a ``shipment.updated`` of this kind has nothing to tell.
    stale: bool = False
    # The facts, when the merge itself wrote all of them: an order this event created (see
    # ``facts_for``). Not part of equality: it is what ``load_facts`` would read.
    facts: Facts | None = field(default=None, compare=False)


# --- events -------------------------------------------------------------------------------------


def record_event(
    session: Session,
    event: Event,
    *,
    source: str,
    received_at: datetime,
    delivery_id: str | None = None,
) -> bool:
    """Store ``event`` once per (source, id); return False when it was already stored."""
    row = {
        "source": source,
        "event_id": event.id,
        "delivery_id": delivery_id,
        "type": str(event.type),
        "occurred_at": event.occurred_at,
        "received_at": received_at,
        "order_id": event.order_id,
        "shipment_id": event.shipment.id if event.shipment else None,
        "payload": event.model_dump(mode="json", by_alias=True, exclude_none=True),
    }
    statement = prepared_insert_ignore(session, sql.EVENTS, ("source", "event_id"), returning="id")
    return session.connection().execute(statement, row).scalar_one_or_none() is not None


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


# --- merging ------------------------------------------------------------------------------------


def _merge_customer(
    session: Session, customer: Customer, now: datetime, existing_id: str | None
) -> dict[str, Any] | None:
    """The customer as stored after the merge (``CUSTOMER_FACTS``), or None without a key."""
    key = fold.customer_merge_key(customer, existing_id)
    if key is None:
        return None
    row = {name: getattr(customer, name) for name in fold.CUSTOMER_FIELDS}
    row.update(id=key, created_at=now, updated_at=now)
    statement = sql.customer_upsert(session.get_bind().dialect.name)
    return dict(session.connection().execute(statement, row).one()._mapping)


def _merge_customers(
    session: Session, event: Event, now: datetime, order: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Merge the order's customer, then the event's own; the last one merged, as stored."""
    customer = None
    for named in (event.order.customer if event.order is not None else None, event.customer):
        if named is None:
            continue
        existing = order["customer_id"] if order is not None else None
        customer = _merge_customer(session, named, now, existing) or customer
        if customer is not None and order is not None:
            order["customer_id"] = customer["id"]
    return customer


@dataclass(frozen=True)
class _MergedOrder:
    id: str
    # The order row as written (``fold.ORDER_COLUMNS``).
    row: dict[str, Any]
    # Created by this event: then no shipment but the event's can belong to it (foreign key).
    created: bool
    # The customer the order names, as stored after this merge, when this event named one.
    customer: dict[str, Any] | None
    # The line items as written, when the event carried them.
    items: list[dict[str, Any]] | None

    @property
    def status(self) -> str:
        return str(self.row["status"])


def _write_items(session: Session, order_id: str, event: Event, replace: bool) -> Any:
    items = fold.fold_items(order_id, event)
    if items is not None and replace:
        session.connection().execute(sql.DELETE_ITEMS, {"order_id": order_id})
    if items:
        session.connection().execute(sql.INSERT_ITEM, items)
    return items


def _merge_order(session: Session, event: Event, now: datetime) -> _MergedOrder | None:
    order_id = event.order_id
    if order_id is None:
        return None
    connection = session.connection()
    stored = connection.execute(sql.READ_ORDER, {"id": order_id}).one_or_none()
    row = fold.fold_order(None if stored is None else stored._mapping, event)
    customer = _merge_customers(session, event, now, row)
    row["updated_at"] = now
    if stored is None:
        connection.execute(sql.INSERT_ORDER, {**row, "id": order_id, "created_at": now})
    else:
        connection.execute(sql.UPDATE_ORDER, {**row, "key": order_id})
    items = _write_items(session, order_id, event, replace=stored is not None)
    return _MergedOrder(
        id=order_id, row=row, created=stored is None, customer=customer, items=items
    )


def _merge_shipment(
    session: Session, event: Event, order: _MergedOrder | None, now: datetime
) -> tuple[dict[str, Any] | None, bool]:
    """The shipment row as written (None when the event names no shipment), and whether the
    event was older than the shipment's stored status (stale)."""
    if event.shipment is None:
        return None, False
    key = event.shipment.id
    connection = session.connection()
    stored = connection.execute(sql.READ_SHIPMENT, {"id": key}).one_or_none()
    row, stale = fold.fold_shipment(
        None if stored is None else stored._mapping, event, order.id if order else None
    )
    row["updated_at"] = now
    if stored is None:
        connection.execute(sql.INSERT_SHIPMENT, {**row, "id": key, "created_at": now})
    else:
        connection.execute(sql.UPDATE_SHIPMENT, {**row, "key": key})
    return row, stale


def _exists(session: Session, statement: Any, order_id: str) -> bool:
    return session.connection().execute(statement, {"order_id": order_id}).first() is not None


def _order_now_delivered(
    session: Session, order: _MergedOrder | None, order_id: str, shipment: dict[str, Any]
) -> bool:
    """Whether the last parcel of the order arrived, or the last one still out was voided
    while others arrived (``shipment``: the settled shipment this event wrote)."""
    if order is not None:
        status: str | None = order.status
    else:
        status = (
            session.connection().execute(sql.ORDER_STATUS, {"id": order_id}).scalar_one_or_none()
        )
    if status in _SETTLED_ORDER_STATUSES:
        return False
    if shipment["status"] == fold.DELIVERED:
        # An order this event created has no other shipment to wait for.
        if order is not None and order.created:
            return True
        return not _exists(session, sql.UNDELIVERED_SHIPMENT, order_id)
    return not _exists(session, sql.UNDELIVERED_SHIPMENT, order_id) and _exists(
        session, sql.DELIVERED_SHIPMENT, order_id
    )


def _deliver_whole_order(
    session: Session, event: Event, order: _MergedOrder | None, order_id: str
) -> None:
    """The source says the whole order arrived: so did every shipment of it. An order this
    event created has no shipment but the event's, delivered by the fold."""
    if event.type == EventType.ORDER_DELIVERED and (order is None or not order.created):
        session.connection().execute(
            sql.DELIVER_ORDER_SHIPMENTS, {"key": order_id, "at": event.occurred_at}
        )


def merge_event(session: Session, event: Event, *, now: datetime) -> MergeResult:
    """Fold ``event`` into the stored customer, order and shipment."""
    order = _merge_order(session, event, now)
    if order is None:
        _merge_customers(session, event, now, None)
    shipment, stale = _merge_shipment(session, event, order, now)
    # A carrier update names only its shipment; the order is the one the store knows.
    order_id = order.id if order else (shipment["order_id"] if shipment else None)
    if order_id is not None:
        _deliver_whole_order(session, event, order, order_id)
    settled = shipment is not None and shipment["status"] in fold.FINAL_SHIPMENT_STATUSES
    now_delivered = False
    if order_id is not None and shipment is not None and settled and not stale:
        now_delivered = _order_now_delivered(session, order, order_id, shipment)
    return MergeResult(
        order_id=order_id,
        shipment_id=event.shipment.id if event.shipment else None,
        order_now_delivered=now_delivered,
        stale=stale,
        facts=_new_order_facts(order, event, shipment) if order and order.created else None,
    )


def _new_order_facts(order: _MergedOrder, event: Event, shipment: dict[str, Any] | None) -> Facts:
    """The facts of an order this event created, from the rows the merge wrote."""
    written = None
    if event.shipment is not None and shipment is not None and shipment["order_id"] == order.id:
        written = shipment_facts(shipment, event.shipment.id)
    return facts_from_rows(
        order.id, order.row, customer=order.customer, shipment=written, items=order.items
    )


def facts_for(session: Session, merged: MergeResult) -> Facts:
    """The facts around a merged event: those the merge wrote, else read from the store."""
    if merged.facts is not None:
        return merged.facts
    return load_facts(session, order_id=merged.order_id, shipment_id=merged.shipment_id)
