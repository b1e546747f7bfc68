"""Merging events into what the store knows of customers, orders and shipments.

Events arrive late, twice and out of order. Order status only moves forward (cancelled and
refunded are final); a shipment's status follows the newest event by ``occurred_at`` and
``delivered`` is final; partial events fill in only the fields they carry.

This is the hot path of ingest: every statement is Core on the tables, built once (so
SQLAlchemy compiles it once), and run with the row as parameters on the session's connection
(``Connection.execute``: no ORM bookkeeping, no autoflush, which is safe because no ORM object
of these tables is ever pending; every write to them is Core). A merge reads the order and
shipment rows it changes (locked on PostgreSQL, so concurrent events of one order take turns),
folds the event in Python and writes the rows back whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    JSON,
    RowMapping,
    Table,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from carebot.events import Customer, Event, EventType, ShipmentStatus
from carebot.store._upsert import dialect_insert, prepared_insert_ignore
from carebot.store.models import (
    CustomerRow,
    EventRow,
    LineItemRow,
    OrderRow,
    RejectedPayloadRow,
    ShipmentRow,
)

__all__ = [
    "Facts",
    "MergeResult",
    "facts_for",
    "load_facts",
    "merge_event",
    "record_event",
    "reject_payload",
]

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
_DELIVERED = str(ShipmentStatus.DELIVERED)
_CANCELLED = str(ShipmentStatus.CANCELLED)
# A shipment in one of these statuses keeps it, whatever arrives later.
_FINAL_SHIPMENT_STATUSES = frozenset({_DELIVERED, _CANCELLED})


@dataclass(frozen=True)
class Facts:
    """What the store knows around one event, as plain JSON-friendly values."""

    order: dict[str, Any] | None = None
    customer: dict[str, Any] | None = None
    shipping_address: dict[str, Any] | None = None
    billing_address: dict[str, Any] | None = None
    shipment: dict[str, Any] | None = None
    shipments: list[dict[str, Any]] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)


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


# --- statements, built once ---------------------------------------------------------------------

_EVENTS = cast(Table, EventRow.__table__)
_CUSTOMERS = cast(Table, CustomerRow.__table__)
_ORDERS = cast(Table, OrderRow.__table__)
_ITEMS = cast(Table, LineItemRow.__table__)
_SHIPMENTS = cast(Table, ShipmentRow.__table__)

_CUSTOMER_FIELDS = ("name", "phone", "email", "locale", "timezone")
# What a merge reads and writes back of an order and of a shipment (besides id and timestamps).
_ORDER_COLUMNS = (
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
_SHIPMENT_COLUMNS = (
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
_ITEM_COLUMNS = ("order_id", "position", "sku", "title", "quantity", "unit_price", "tags")

# A parameter of None must store SQL NULL, as the ORM did for an order without an address, not
# the JSON ``null`` a plain JSON column type would write.
_JSON_OR_NULL = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def _params(*names: str) -> dict[str, Any]:
    return {name: bindparam(name) for name in names}


# Read with the lock the UPDATE that follows takes anyway (FOR NO KEY UPDATE on PostgreSQL), so
# concurrent events of one row take turns instead of writing back stale values. SQLite
# transactions already hold the write lock.
_READ_ORDER = (
    select(*(_ORDERS.c[name] for name in _ORDER_COLUMNS))
    .where(_ORDERS.c.id == bindparam("id"))
    .with_for_update(key_share=True)
)
_ORDER_STATUS = select(_ORDERS.c.status).where(_ORDERS.c.id == bindparam("id"))
_ORDER_VALUES = {
    **_params(*_ORDER_COLUMNS, "updated_at"),
    "shipping_address": bindparam("shipping_address", type_=_JSON_OR_NULL),
    "billing_address": bindparam("billing_address", type_=_JSON_OR_NULL),
}
_INSERT_ORDER = insert(_ORDERS).values({**_ORDER_VALUES, **_params("id", "created_at")})
# An update's WHERE parameter is ``key``: a parameter named like a column is a value to SET.
_UPDATE_ORDER = update(_ORDERS).where(_ORDERS.c.id == bindparam("key")).values(_ORDER_VALUES)
_DELETE_ITEMS = delete(_ITEMS).where(_ITEMS.c.order_id == bindparam("order_id"))
_INSERT_ITEM = insert(_ITEMS).values(_params(*_ITEM_COLUMNS))

_READ_SHIPMENT = (
    select(*(_SHIPMENTS.c[name] for name in _SHIPMENT_COLUMNS))
    .where(_SHIPMENTS.c.id == bindparam("id"))
    .with_for_update(key_share=True)
)
_INSERT_SHIPMENT = insert(_SHIPMENTS).values(
    _params("id", *_SHIPMENT_COLUMNS, "created_at", "updated_at")
)
_UPDATE_SHIPMENT = (
    update(_SHIPMENTS)
    .where(_SHIPMENTS.c.id == bindparam("key"))
    .values(_params(*_SHIPMENT_COLUMNS, "updated_at"))
)
# A parcel still to arrive: neither delivered nor voided by the platform (cancelled).
_NOT_DELIVERED = or_(
    _SHIPMENTS.c.status.is_(None), _SHIPMENTS.c.status.not_in([_DELIVERED, _CANCELLED])
)
_DELIVER_ORDER_SHIPMENTS = (
    update(_SHIPMENTS)
    .where(_SHIPMENTS.c.order_id == bindparam("key"), _NOT_DELIVERED)
    .values(status=_DELIVERED, status_at=bindparam("at"), delivered_at=bindparam("at"))
)
_UNDELIVERED_SHIPMENT = (
    select(_SHIPMENTS.c.id)
    .where(_SHIPMENTS.c.order_id == bindparam("order_id"), _NOT_DELIVERED)
    .limit(1)
)
_DELIVERED_SHIPMENT = (
    select(_SHIPMENTS.c.id)
    .where(_SHIPMENTS.c.order_id == bindparam("order_id"), _SHIPMENTS.c.status == _DELIVERED)
    .limit(1)
)

_ORDER_FACTS = ("id", "number", "placed_at", "total", "currency", "status", "delivered_at")
_CUSTOMER_FACTS = ("id", *_CUSTOMER_FIELDS)
_SHIPMENT_FACTS = (
    "id",
    "carrier",
    "tracking_number",
    "tracking_url",
    "status",
    "expected_delivery",
    "last_scan_at",
    "shipped_at",
    "delivered_at",
)
# One row per shipment of the order (or one row without a shipment): the order and customer
# columns are prefixed, the shipment columns keep their names.
_LOAD_ORDER = (
    select(
        *(_ORDERS.c[name].label(f"order_{name}") for name in _ORDER_FACTS),
        _ORDERS.c.shipping_address.label("order_shipping_address"),
        _ORDERS.c.billing_address.label("order_billing_address"),
        *(_CUSTOMERS.c[name].label(f"customer_{name}") for name in _CUSTOMER_FACTS),
        *(_SHIPMENTS.c[name] for name in _SHIPMENT_FACTS),
    )
    .select_from(
        _ORDERS.outerjoin(_CUSTOMERS, _CUSTOMERS.c.id == _ORDERS.c.customer_id).outerjoin(
            _SHIPMENTS, _SHIPMENTS.c.order_id == _ORDERS.c.id
        )
    )
    .where(_ORDERS.c.id == bindparam("order_id"))
    .order_by(_SHIPMENTS.c.id)
)
_LOAD_SHIPMENT = select(*(_SHIPMENTS.c[name] for name in _SHIPMENT_FACTS)).where(
    _SHIPMENTS.c.id == bindparam("id")
)
_LOAD_ITEMS = (
    select(_ITEMS.c.sku, _ITEMS.c.title, _ITEMS.c.quantity, _ITEMS.c.unit_price, _ITEMS.c.tags)
    .where(_ITEMS.c.order_id == bindparam("order_id"))
    .order_by(_ITEMS.c.position, _ITEMS.c.id)
)


@cache
def _customer_upsert(dialect: str) -> Any:
    """Insert a customer or fill in the stored one, built once per dialect (``ON CONFLICT``)."""
    statement = dialect_insert(dialect, _CUSTOMERS).values(
        _params("id", *_CUSTOMER_FIELDS, "created_at", "updated_at")
    )
    # A field the event does not carry (None) keeps what is stored. The merged customer comes
    # back: the facts of an order this event created need it (``_new_order_facts``).
    return statement.on_conflict_do_update(
        index_elements=["id"],
        set_={
            **{
                name: func.coalesce(statement.excluded[name], _CUSTOMERS.c[name])
                for name in _CUSTOMER_FIELDS
            },
            "updated_at": statement.excluded.updated_at,
        },
    ).returning(*(_CUSTOMERS.c[name] for name in _CUSTOMER_FACTS))


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
    statement = prepared_insert_ignore(session, _EVENTS, ("source", "event_id"), returning="id")
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
) -> dict[str, Any] | None:
    """The customer as stored after the merge (``_CUSTOMER_FACTS``), or None without a key."""
    key = existing_id if existing_id and not customer.id else _customer_key(customer)
    if key is None:
        return None
    row = {name: getattr(customer, name) for name in _CUSTOMER_FIELDS}
    row.update(id=key, created_at=now, updated_at=now)
    merged = (
        session.connection().execute(_customer_upsert(session.get_bind().dialect.name), row).one()
    )
    return dict(merged._mapping)


def _apply_order_status(row: dict[str, Any], event: Event) -> None:
    new = _ORDER_STATUS_FOR.get(event.type)
    if new is None or row["status"] in _FINAL_ORDER_STATUSES:
        return
    if new in _FINAL_ORDER_STATUSES or _ORDER_RANK[new] > _ORDER_RANK.get(row["status"], 0):
        row["status"] = new
        row["status_at"] = event.occurred_at
        if new == "delivered" and row["delivered_at"] is None:
            row["delivered_at"] = event.occurred_at


@dataclass(frozen=True)
class _MergedOrder:
    id: str
    # The order row as written (``_ORDER_COLUMNS``).
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


def _merge_order(session: Session, event: Event, now: datetime) -> _MergedOrder | None:
    order_id = event.order_id
    if order_id is None:
        return None
    stored = session.connection().execute(_READ_ORDER, {"id": order_id}).one_or_none()
    row: dict[str, Any] = dict.fromkeys(_ORDER_COLUMNS)
    if stored is None:
        row["status"] = "placed"
    else:
        row.update(stored._mapping)
    order = event.order
    if order is not None:
        if order.placed_at is not None:
            row["placed_at"] = order.placed_at
        if order.total is not None:
            row["total"] = str(order.total)
        if order.currency is not None:
            row["currency"] = order.currency
        if order.number is not None:
            row["number"] = order.number
        for name in ("shipping_address", "billing_address"):
            address = getattr(order, name)
            if address is not None:
                merged = dict(row[name] or {})
                merged.update(address.model_dump(mode="json", exclude_none=True))
                row[name] = merged
    customer = None
    for named in (order.customer if order is not None else None, event.customer):
        if named is not None:
            customer = _merge_customer(session, named, now, row["customer_id"]) or customer
            if customer is not None:
                row["customer_id"] = customer["id"]
    _apply_order_status(row, event)
    row["updated_at"] = now
    if stored is None:
        session.connection().execute(_INSERT_ORDER, {**row, "id": order_id, "created_at": now})
    else:
        session.connection().execute(_UPDATE_ORDER, {**row, "key": order_id})
    items = None
    if order is not None and order.items is not None:
        if stored is not None:
            session.connection().execute(_DELETE_ITEMS, {"order_id": order_id})
        items = [
            {
                "order_id": order_id,
                "position": i,
                "sku": item.sku,
                "title": item.title,
                "quantity": item.quantity,
                "unit_price": None if item.unit_price is None else str(item.unit_price),
                "tags": list(item.tags),
            }
            for i, item in enumerate(order.items)
        ]
        if items:
            session.connection().execute(_INSERT_ITEM, items)
    return _MergedOrder(
        id=order_id, row=row, created=stored is None, customer=customer, items=items
    )


def _implied_shipment_status(event: Event) -> ShipmentStatus | None:
    if event.shipment is not None and event.shipment.status is not None:
        return event.shipment.status
    if event.type == EventType.ORDER_SHIPPED:
        return ShipmentStatus.IN_TRANSIT
    if event.type == EventType.ORDER_DELIVERED:
        return ShipmentStatus.DELIVERED
    return None


def _merge_shipment(
    session: Session, event: Event, order: _MergedOrder | None, now: datetime
) -> tuple[dict[str, Any] | None, bool]:
    """The shipment row as written (None when the event names no shipment), and whether the
    event was older than the shipment's stored status (stale)."""
    shipment = event.shipment
    if shipment is None:
        return None, False
    stored = session.connection().execute(_READ_SHIPMENT, {"id": shipment.id}).one_or_none()
    row: dict[str, Any] = dict.fromkeys(_SHIPMENT_COLUMNS)
    if stored is not None:
        row.update(stored._mapping)
    # Carriers' updates arrive out of order: an older one fills in what is missing and never
    # overwrites what a newer one said (its expected delivery, its carrier name).
    stale = row["status_at"] is not None and event.occurred_at < row["status_at"]
    if order is not None:
        row["order_id"] = order.id
    for name in ("carrier", "tracking_number", "tracking_url", "expected_delivery"):
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
    status = _implied_shipment_status(event)
    newer = row["status_at"] is None or event.occurred_at >= row["status_at"]
    if status is not None and row["status"] not in _FINAL_SHIPMENT_STATUSES and newer:
        row["status"] = str(status)
        row["status_at"] = event.occurred_at
        if status == ShipmentStatus.DELIVERED:
            row["delivered_at"] = event.occurred_at
    # A shipment's order_id always names a stored order (foreign key): when the whole order
    # arrived, so did this shipment.
    if (
        event.type == EventType.ORDER_DELIVERED
        and row["order_id"] is not None
        and row["status"] not in _FINAL_SHIPMENT_STATUSES
    ):
        row.update(status=_DELIVERED, status_at=event.occurred_at, delivered_at=event.occurred_at)
    row["updated_at"] = now
    if stored is None:
        session.connection().execute(
            _INSERT_SHIPMENT, {**row, "id": shipment.id, "created_at": now}
        )
    else:
        session.connection().execute(_UPDATE_SHIPMENT, {**row, "key": shipment.id})
    return row, stale


def _all_delivered(session: Session, order_id: str) -> bool:
    return (
        session.connection().execute(_UNDELIVERED_SHIPMENT, {"order_id": order_id}).first() is None
    )


def _any_delivered(session: Session, order_id: str) -> bool:
    return (
        session.connection().execute(_DELIVERED_SHIPMENT, {"order_id": order_id}).first()
        is not None
    )


def merge_event(session: Session, event: Event, *, now: datetime) -> MergeResult:
    """Fold ``event`` into the stored customer, order and shipment."""
    order = _merge_order(session, event, now)
    if event.customer is not None and order is None:
        _merge_customer(session, event.customer, now, None)
    shipment, stale = _merge_shipment(session, event, order, now)
    # A carrier update names only its shipment; the order is the one the store knows.
    order_id = order.id if order else (shipment["order_id"] if shipment else None)
    # The source says the whole order arrived: so did every shipment of it. An order this
    # event created has no shipment but the event's, delivered above.
    if (
        event.type == EventType.ORDER_DELIVERED
        and order_id is not None
        and (order is None or not order.created)
    ):
        session.connection().execute(
            _DELIVER_ORDER_SHIPMENTS, {"key": order_id, "at": event.occurred_at}
        )
    now_delivered = False
    # The last parcel arrived, or the last one still out was voided while others arrived.
    settled = shipment is not None and shipment["status"] in _FINAL_SHIPMENT_STATUSES
    if order_id is not None and shipment is not None and settled and not stale:
        if order is not None:
            order_status: str | None = order.status
        else:
            order_status = (
                session.connection().execute(_ORDER_STATUS, {"id": order_id}).scalar_one_or_none()
            )
        if order_status not in (None, "delivered", *_FINAL_ORDER_STATUSES):
            # An order this event created has no other shipment to wait for.
            if shipment["status"] == _DELIVERED:
                now_delivered = (order is not None and order.created) or _all_delivered(
                    session, order_id
                )
            else:
                now_delivered = _all_delivered(session, order_id) and _any_delivered(
                    session, order_id
                )
    return MergeResult(
        order_id=order_id,
        shipment_id=event.shipment.id if event.shipment else None,
        order_now_delivered=now_delivered,
        stale=stale,
        facts=_new_order_facts(order, event, shipment) if order and order.created else None,
    )


def _utc_iso(value: Any) -> Any:
    """A written value as ``load_facts`` reads it back: instants in UTC, dates as they are."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return _iso(value)


def _new_order_facts(order: _MergedOrder, event: Event, shipment: dict[str, Any] | None) -> Facts:
    """The facts of an order this event created, from the rows the merge wrote.

    Nothing else can belong to a new order: a shipment names a stored order (foreign key), so
    its only shipment is the event's, and its items are the event's.
    """
    row = order.row
    shipments = []
    if event.shipment is not None and shipment is not None and shipment["order_id"] == order.id:
        written = {**shipment, "id": event.shipment.id}
        shipments.append({name: _utc_iso(written[name]) for name in _SHIPMENT_FACTS})
    return Facts(
        order={"id": order.id, **{name: _utc_iso(row[name]) for name in _ORDER_FACTS[1:]}},
        customer=order.customer,
        shipping_address=dict(row["shipping_address"] or {}),
        billing_address=dict(row["billing_address"] or {}),
        shipment=dict(shipments[0]) if shipments else None,
        shipments=shipments,
        items=[
            {name: item[name] for name in ("sku", "title", "quantity", "unit_price", "tags")}
            for item in order.items or []
        ],
    )


def facts_for(session: Session, merged: MergeResult) -> Facts:
    """The facts around a merged event: those the merge wrote, else read from the store."""
    if merged.facts is not None:
        return merged.facts
    return load_facts(session, order_id=merged.order_id, shipment_id=merged.shipment_id)


# --- reading ------------------------------------------------------------------------------------


def _iso(value: Any) -> Any:
    return value.isoformat() if value is not None and hasattr(value, "isoformat") else value


def _shipment_facts(row: RowMapping) -> dict[str, Any]:
    return {name: _iso(row[name]) for name in _SHIPMENT_FACTS}


def load_facts(session: Session, *, order_id: str | None, shipment_id: str | None) -> Facts:
    """Everything the planner may need about an order and one of its shipments."""
    rows = (
        session.connection().execute(_LOAD_ORDER, {"order_id": order_id}).all() if order_id else []
    )
    shipments = [_shipment_facts(row._mapping) for row in rows if row.id is not None]
    shipment = next((dict(s) for s in shipments if s["id"] == shipment_id), None)
    if shipment is None and shipment_id:
        found = session.connection().execute(_LOAD_SHIPMENT, {"id": shipment_id}).one_or_none()
        shipment = _shipment_facts(found._mapping) if found else None
    if not rows:
        return Facts(shipment=shipment)
    first = rows[0]._mapping
    items = session.connection().execute(_LOAD_ITEMS, {"order_id": order_id})
    return Facts(
        order={name: _iso(first[f"order_{name}"]) for name in _ORDER_FACTS},
        customer=None
        if first["customer_id"] is None
        else {name: first[f"customer_{name}"] for name in _CUSTOMER_FACTS},
        shipping_address=dict(first["order_shipping_address"] or {}),
        billing_address=dict(first["order_billing_address"] or {}),
        shipment=shipment,
        shipments=shipments,
        items=[
            {
                "sku": item.sku,
                "title": item.title,
                "quantity": item.quantity,
                "unit_price": item.unit_price,
                "tags": list(item.tags or []),
            }
            for item in items
        ],
    )
