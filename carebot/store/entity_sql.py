"""The Core statements of the entity store, built once (so SQLAlchemy compiles each once).

Every statement runs with a row as parameters on the session's connection
(``Connection.execute``): no ORM bookkeeping, no autoflush, which is safe because no ORM object
of these tables is ever pending; every write to them is Core.
"""

from __future__ import annotations

from functools import cache
from typing import Any, cast

from sqlalchemy import JSON, Table, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import JSONB

from carebot.facts import CustomerFacts, OrderFacts, ShipmentFacts
from carebot.fold import CANCELLED, CUSTOMER_FIELDS, DELIVERED, ORDER_COLUMNS, SHIPMENT_COLUMNS
from carebot.store._upsert import dialect_insert
from carebot.store.models import CustomerRow, EventRow, LineItemRow, OrderRow, ShipmentRow

EVENTS = cast(Table, EventRow.__table__)
CUSTOMERS = cast(Table, CustomerRow.__table__)
ORDERS = cast(Table, OrderRow.__table__)
ITEMS = cast(Table, LineItemRow.__table__)
SHIPMENTS = cast(Table, ShipmentRow.__table__)

ITEM_COLUMNS = ("order_id", "position", "sku", "title", "quantity", "unit_price", "tags")

# A parameter of None must store SQL NULL, as the ORM did for an order without an address, not
# the JSON ``null`` a plain JSON column type would write.
JSON_OR_NULL = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def _params(*names: str) -> dict[str, Any]:
    return {name: bindparam(name) for name in names}


# Read with the lock the UPDATE that follows takes anyway (FOR NO KEY UPDATE on PostgreSQL), so
# concurrent events of one row take turns instead of writing back stale values. SQLite
# transactions already hold the write lock.
READ_ORDER = (
    select(*(ORDERS.c[name] for name in ORDER_COLUMNS))
    .where(ORDERS.c.id == bindparam("id"))
    .with_for_update(key_share=True)
)
ORDER_STATUS = select(ORDERS.c.status).where(ORDERS.c.id == bindparam("id"))
ORDER_VALUES = {
    **_params(*ORDER_COLUMNS, "updated_at"),
    "shipping_address": bindparam("shipping_address", type_=JSON_OR_NULL),
    "billing_address": bindparam("billing_address", type_=JSON_OR_NULL),
}
INSERT_ORDER = insert(ORDERS).values({**ORDER_VALUES, **_params("id", "created_at")})
# An update's WHERE parameter is ``key``: a parameter named like a column is a value to SET.
UPDATE_ORDER = update(ORDERS).where(ORDERS.c.id == bindparam("key")).values(ORDER_VALUES)
DELETE_ITEMS = delete(ITEMS).where(ITEMS.c.order_id == bindparam("order_id"))
INSERT_ITEM = insert(ITEMS).values(_params(*ITEM_COLUMNS))

READ_SHIPMENT = (
    select(*(SHIPMENTS.c[name] for name in SHIPMENT_COLUMNS))
    .where(SHIPMENTS.c.id == bindparam("id"))
    .with_for_update(key_share=True)
)
INSERT_SHIPMENT = insert(SHIPMENTS).values(
    _params("id", *SHIPMENT_COLUMNS, "created_at", "updated_at")
)
UPDATE_SHIPMENT = (
    update(SHIPMENTS)
    .where(SHIPMENTS.c.id == bindparam("key"))
    .values(_params(*SHIPMENT_COLUMNS, "updated_at"))
)
# A parcel still to arrive: neither delivered nor voided by the platform (cancelled).
NOT_DELIVERED = or_(SHIPMENTS.c.status.is_(None), SHIPMENTS.c.status.not_in([DELIVERED, CANCELLED]))
DELIVER_ORDER_SHIPMENTS = (
    update(SHIPMENTS)
    .where(SHIPMENTS.c.order_id == bindparam("key"), NOT_DELIVERED)
    .values(status=DELIVERED, status_at=bindparam("at"), delivered_at=bindparam("at"))
)
UNDELIVERED_SHIPMENT = (
    select(SHIPMENTS.c.id)
    .where(SHIPMENTS.c.order_id == bindparam("order_id"), NOT_DELIVERED)
    .limit(1)
)
DELIVERED_SHIPMENT = (
    select(SHIPMENTS.c.id)
    .where(SHIPMENTS.c.order_id == bindparam("order_id"), SHIPMENTS.c.status == DELIVERED)
    .limit(1)
)

ORDER_FACTS = OrderFacts.KEYS
CUSTOMER_FACTS = CustomerFacts.KEYS
SHIPMENT_FACTS = ShipmentFacts.KEYS
# One row per shipment of the order (or one row without a shipment): the order and customer
# columns are prefixed, the shipment columns keep their names.
LOAD_ORDER = (
    select(
        *(ORDERS.c[name].label(f"order_{name}") for name in ORDER_FACTS),
        ORDERS.c.shipping_address.label("order_shipping_address"),
        ORDERS.c.billing_address.label("order_billing_address"),
        *(CUSTOMERS.c[name].label(f"customer_{name}") for name in CUSTOMER_FACTS),
        *(SHIPMENTS.c[name] for name in SHIPMENT_FACTS),
    )
    .select_from(
        ORDERS.outerjoin(CUSTOMERS, CUSTOMERS.c.id == ORDERS.c.customer_id).outerjoin(
            SHIPMENTS, SHIPMENTS.c.order_id == ORDERS.c.id
        )
    )
    .where(ORDERS.c.id == bindparam("order_id"))
    .order_by(SHIPMENTS.c.id)
)
LOAD_SHIPMENT = select(*(SHIPMENTS.c[name] for name in SHIPMENT_FACTS)).where(
    SHIPMENTS.c.id == bindparam("id")
)
LOAD_ITEMS = (
    select(ITEMS.c.sku, ITEMS.c.title, ITEMS.c.quantity, ITEMS.c.unit_price, ITEMS.c.tags)
    .where(ITEMS.c.order_id == bindparam("order_id"))
    .order_by(ITEMS.c.position, ITEMS.c.id)
)


@cache
def customer_upsert(dialect: str) -> Any:
    """Insert a customer or fill in the stored one, built once per dialect (``ON CONFLICT``)."""
    statement = dialect_insert(dialect, CUSTOMERS).values(
        _params("id", *CUSTOMER_FIELDS, "created_at", "updated_at")
    )
    # A field the event does not carry (None) keeps what is stored. The merged customer comes
    # back: the facts of an order this event created need it (``facts_from_rows``).
    return statement.on_conflict_do_update(
        index_elements=["id"],
        set_={
            **{
                name: func.coalesce(statement.excluded[name], CUSTOMERS.c[name])
                for name in CUSTOMER_FIELDS
            },
            "updated_at": statement.excluded.updated_at,
        },
    ).returning(*(CUSTOMERS.c[name] for name in CUSTOMER_FACTS))
