"""The merge rules of ``merge_event`` and what ``load_facts`` reads back, on real databases.

Rules already exercised through the pipeline in ``test_store.py`` (duplicates, a partial update
keeping the order, an older shipment status arriving late, the derived order.delivered) are not
repeated here.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from support.core import database_for

from carebot.events import Event, parse_event
from carebot.store import entities
from carebot.store.database import Database
from carebot.store.entities import Facts, MergeResult
from carebot.store.models import CustomerRow, OrderRow, ShipmentRow

# What a test reads of a record the store does not hold (typed for the checker).
NOTHING: Mapping[str, Any] = {}

T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=10)
_ids = itertools.count()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    database = database_for(request, tmp_path)
    yield database
    database.dispose()


def event(kind: str, at: datetime, **fields: Any) -> Event:
    return parse_event(
        {"id": f"evt-{next(_ids)}", "type": kind, "occurred_at": at.isoformat(), **fields}
    )


def merge(db: Database, *events: Event) -> MergeResult:
    result = None
    for one in events:
        with db.transaction() as session:
            result = entities.merge_event(session, one, now=NOW)
    assert result is not None
    return result


def facts(db: Database, order_id: str | None = "1", shipment_id: str | None = None) -> Facts:
    with db.transaction() as session:
        return entities.load_facts(session, order_id=order_id, shipment_id=shipment_id)


def order_row(db: Database, order_id: str = "1") -> OrderRow:
    with db.transaction() as session:
        row = session.get(OrderRow, order_id)
        assert row is not None
        return row


def shipment_row(db: Database, shipment_id: str) -> ShipmentRow:
    with db.transaction() as session:
        row = session.get(ShipmentRow, shipment_id)
        assert row is not None
        return row


def shipment_update(at: datetime, shipment_id: str, status: str, **fields: Any) -> Event:
    """A carrier update: it names only its shipment."""
    return event("shipment.updated", at, shipment={"id": shipment_id, "status": status, **fields})


# --- orders --------------------------------------------------------------------------------------


def test_order_status_only_moves_forward_and_delivered_at_is_set_once(db: Database) -> None:
    merge(db, event("order.shipped", T0 + timedelta(hours=1), order={"id": "1"}))
    merge(db, event("order.paid", T0, order={"id": "1"}))  # older news, arriving late
    row = order_row(db)
    assert (row.status, row.status_at) == ("shipped", T0 + timedelta(hours=1))

    delivered_at = T0 + timedelta(days=2)
    merge(db, event("order.delivered", delivered_at, order={"id": "1"}))
    merge(db, event("order.delivered", delivered_at + timedelta(days=1), order={"id": "1"}))
    row = order_row(db)
    assert (row.status, row.status_at, row.delivered_at) == (
        "delivered",
        delivered_at,
        delivered_at,
    )


def test_cancelled_and_refunded_are_final_but_end_a_delivered_order(db: Database) -> None:
    cancelled_at = T0 + timedelta(hours=1)
    merge(
        db,
        event("order.paid", T0, order={"id": "1"}),
        event("order.cancelled", cancelled_at, order={"id": "1"}),
        event("order.shipped", T0 + timedelta(hours=2), order={"id": "1"}),
        event("order.delivered", T0 + timedelta(days=2), order={"id": "1"}),
        event("order.refunded", T0 + timedelta(days=3), order={"id": "1"}),
    )
    row = order_row(db)
    assert (row.status, row.status_at, row.delivered_at) == ("cancelled", cancelled_at, None)

    delivered_at = T0 + timedelta(days=2)
    refunded_at = T0 + timedelta(days=5)
    merge(
        db,
        event("order.delivered", delivered_at, order={"id": "2"}),
        event("order.refunded", refunded_at, order={"id": "2"}),
    )
    row = order_row(db, "2")
    assert (row.status, row.status_at, row.delivered_at) == ("refunded", refunded_at, delivered_at)


def test_the_shipping_address_is_merged_field_by_field(db: Database) -> None:
    address = {"country": "CN", "city": "杭州市", "postal_code": "310000"}
    merge(db, event("order.placed", T0, order={"id": "1", "shipping_address": address}))
    moved = {"city": "宁波市", "line1": "中山路 1 号"}
    merge(db, event("order.paid", T0, order={"id": "1", "shipping_address": moved}))

    assert facts(db).shipping_address == {
        "country": "CN",
        "city": "宁波市",
        "postal_code": "310000",
        "line1": "中山路 1 号",
    }


def test_an_order_without_an_address_stores_sql_null(db: Database) -> None:
    merge(db, event("order.placed", T0, order={"id": "1"}))
    with db.transaction() as session:
        nulls = session.scalar(
            select(func.count()).select_from(OrderRow).where(OrderRow.shipping_address.is_(None))
        )
    assert nulls == 1
    assert facts(db).shipping_address == {}


def test_items_are_replaced_only_by_an_event_that_carries_items(db: Database) -> None:
    two = [
        {"sku": "MILK-900G", "title": "奶粉", "quantity": 2, "unit_price": "179.00"},
        {"sku": "WIPES", "title": "湿巾", "tags": ["baby", "refill"]},
    ]
    merge(db, event("order.placed", T0, order={"id": "1", "items": two}))
    merge(db, event("order.paid", T0, order={"id": "1", "total": "358.00"}))
    assert facts(db).items == [
        {"sku": "MILK-900G", "title": "奶粉", "quantity": 2, "unit_price": "179.00", "tags": []},
        {
            "sku": "WIPES",
            "title": "湿巾",
            "quantity": 1,
            "unit_price": None,
            "tags": ["baby", "refill"],
        },
    ]

    merge(db, event("order.paid", T0, order={"id": "1", "items": [{"sku": "BIBS"}]}))
    assert [item["sku"] for item in facts(db).items] == ["BIBS"]

    merge(db, event("order.paid", T0, order={"id": "1", "items": []}))
    assert facts(db).items == []


# --- customers -----------------------------------------------------------------------------------


def test_a_customer_without_an_id_is_keyed_by_email_then_phone(db: Database) -> None:
    merge(
        db, event("order.placed", T0, order={"id": "1", "customer": {"email": "Wang@Example.com"}})
    )
    merge(db, event("order.placed", T0, order={"id": "2", "customer": {"phone": "+8613800138000"}}))

    assert (facts(db, "1").customer or NOTHING)["id"] == "email:wang@example.com"
    assert (facts(db, "2").customer or NOTHING)["id"] == "phone:+8613800138000"


def test_a_later_customer_without_an_id_updates_the_order_s_customer(db: Database) -> None:
    first = {"id": "c-42", "name": "王芳", "phone": "+8613800138000", "locale": "zh-CN"}
    merge(db, event("order.placed", T0, order={"id": "1", "customer": first}))
    merge(db, event("order.paid", T0, order={"id": "1", "customer": {"email": "wang@example.com"}}))

    customer = facts(db).customer
    assert customer is not None
    assert customer.as_context() == {
        "id": "c-42",
        "name": "王芳",
        "phone": "+8613800138000",
        "email": "wang@example.com",
        "locale": "zh-CN",
        "timezone": None,
    }
    with db.transaction() as session:
        assert session.scalars(select(CustomerRow.id)).all() == ["c-42"]

    # A customer with an id of its own is that customer, not an update of the previous one.
    merge(db, event("order.paid", T0, order={"id": "1", "customer": {"id": "c-43"}}))
    assert (facts(db).customer or NOTHING)["id"] == "c-43"


def test_a_customer_update_without_an_order_fills_in_the_customer(db: Database) -> None:
    merge(
        db, event("order.placed", T0, order={"id": "1", "customer": {"id": "c-42", "name": "王芳"}})
    )
    result = merge(
        db,
        event("customer.updated", T0, customer={"id": "c-42", "timezone": "Asia/Shanghai"}),
    )

    assert result == MergeResult(order_id=None, shipment_id=None)
    customer = facts(db).customer or NOTHING
    assert (customer["name"], customer["timezone"]) == ("王芳", "Asia/Shanghai")


# --- shipments -----------------------------------------------------------------------------------


def test_delivered_is_final_for_a_shipment_even_against_newer_events(db: Database) -> None:
    delivered_at = T0 + timedelta(days=2)
    merge(
        db,
        event("order.shipped", T0, order={"id": "1"}, shipment={"id": "s-1"}),
        shipment_update(delivered_at, "s-1", "delivered"),
        shipment_update(delivered_at + timedelta(hours=1), "s-1", "exception"),
    )
    shipment = facts(db, shipment_id="s-1").shipment or NOTHING
    assert (shipment["status"], shipment["delivered_at"]) == ("delivered", delivered_at.isoformat())


def test_shipped_at_is_set_once_and_the_last_scan_only_moves_forward(db: Database) -> None:
    merge(
        db,
        event("order.shipped", T0, order={"id": "1"}, shipment={"id": "s-1"}),
        event("order.shipped", T0 + timedelta(hours=5), order={"id": "1"}, shipment={"id": "s-1"}),
        shipment_update(T0 + timedelta(hours=8), "s-1", "in_transit"),
        shipment_update(
            T0 + timedelta(hours=6), "s-1", "in_transit", expected_delivery="2026-11-23"
        ),
    )
    shipment = facts(db, shipment_id="s-1").shipment or NOTHING
    assert shipment["shipped_at"] == T0.isoformat()
    assert shipment["last_scan_at"] == (T0 + timedelta(hours=8)).isoformat()
    assert shipment["expected_delivery"] == "2026-11-23"  # the late event still fills in


def test_order_delivered_marks_every_shipment_of_the_order_delivered(db: Database) -> None:
    merge(
        db,
        event("order.shipped", T0, order={"id": "1"}, shipment={"id": "s-1"}),
        event("order.shipped", T0, order={"id": "1"}, shipment={"id": "s-2"}),
        event("order.shipped", T0, order={"id": "1"}, shipment={"id": "s-3"}),
        event("order.shipped", T0, order={"id": "2"}, shipment={"id": "s-9"}),
        shipment_update(T0 + timedelta(days=1), "s-2", "delivered"),
        # Newer than the order's delivery, yet the whole order arrived.
        shipment_update(T0 + timedelta(days=4), "s-3", "out_for_delivery"),
    )
    delivered_at = T0 + timedelta(days=3)
    result = merge(db, event("order.delivered", delivered_at, order={"id": "1"}))

    assert result == MergeResult(order_id="1", shipment_id=None)
    by_id = {s["id"]: (s["status"], s["delivered_at"]) for s in facts(db).shipments}
    assert by_id == {
        "s-1": ("delivered", delivered_at.isoformat()),
        "s-2": ("delivered", (T0 + timedelta(days=1)).isoformat()),
        "s-3": ("delivered", delivered_at.isoformat()),
    }
    assert shipment_row(db, "s-3").status_at == delivered_at
    assert shipment_row(db, "s-9").status == "in_transit"


def test_order_delivered_with_an_explicit_shipment_status_still_delivers_it(db: Database) -> None:
    at = T0 + timedelta(days=2)
    merge(
        db,
        event(
            "order.delivered",
            at,
            order={"id": "1"},
            shipment={"id": "s-1", "status": "out_for_delivery"},
        ),
    )
    assert (shipment_row(db, "s-1").status, shipment_row(db, "s-1").delivered_at) == (
        "delivered",
        at,
    )


# --- order_now_delivered -------------------------------------------------------------------------


def test_order_now_delivered_when_the_last_of_two_shipments_is_delivered(db: Database) -> None:
    merge(
        db,
        event("order.shipped", T0, order={"id": "1"}, shipment={"id": "s-1"}),
        event("order.shipped", T0, order={"id": "1"}, shipment={"id": "s-2"}),
    )
    first = merge(db, shipment_update(T0 + timedelta(days=1), "s-1", "delivered"))
    assert first == MergeResult(order_id="1", shipment_id="s-1", order_now_delivered=False)

    # The carrier names only the shipment: the order is the one the store knows.
    last = merge(db, shipment_update(T0 + timedelta(days=2), "s-2", "delivered"))
    assert last == MergeResult(order_id="1", shipment_id="s-2", order_now_delivered=True)

    merge(db, event("order.delivered", T0 + timedelta(days=2), order={"id": "1"}))
    again = merge(db, shipment_update(T0 + timedelta(days=3), "s-2", "delivered"))
    assert again.order_now_delivered is False


def test_order_now_delivered_for_a_new_order_and_never_for_a_cancelled_one(db: Database) -> None:
    first_news = event(
        "shipment.updated",
        T0,
        order={"id": "1"},
        shipment={"id": "s-1", "status": "delivered"},
    )
    assert merge(db, first_news).order_now_delivered is True

    merge(
        db,
        event("order.shipped", T0, order={"id": "2"}, shipment={"id": "s-2"}),
        event("order.cancelled", T0 + timedelta(hours=1), order={"id": "2"}),
    )
    assert merge(db, shipment_update(T0 + timedelta(days=1), "s-2", "delivered")) == MergeResult(
        order_id="2", shipment_id="s-2", order_now_delivered=False
    )


def test_a_shipment_of_no_known_order_merges_on_its_own(db: Database) -> None:
    result = merge(db, shipment_update(T0, "s-1", "delivered", carrier="SF Express"))
    assert result == MergeResult(order_id=None, shipment_id="s-1")
    assert shipment_row(db, "s-1").order_id is None

    # The order's own event later claims it.
    merge(db, event("order.shipped", T0, order={"id": "1"}, shipment={"id": "s-1"}))
    assert shipment_row(db, "s-1").order_id == "1"
    assert shipment_row(db, "s-1").status == "delivered"


# --- load_facts ----------------------------------------------------------------------------------


def test_load_facts_reads_the_order_its_shipments_and_the_named_shipment(db: Database) -> None:
    merge(
        db,
        event(
            "order.shipped",
            T0,
            order={"id": "1", "placed_at": "2026-11-19T21:13:00+08:00", "total": "358.00"},
            shipment={"id": "s-2", "carrier": "SF Express"},
        ),
        event("order.shipped", T0, order={"id": "1"}, shipment={"id": "s-1"}),
        event("order.shipped", T0, order={"id": "2"}, shipment={"id": "s-9"}),
    )

    known = facts(db, "1", "s-9")
    assert known.order is not None
    assert known.order.as_context() == {
        "id": "1",
        "number": None,
        "placed_at": "2026-11-19T13:13:00+00:00",
        "total": "358.00",
        "currency": None,
        "status": "shipped",
        "delivered_at": None,
    }
    assert known.customer is None
    assert [s["id"] for s in known.shipments] == ["s-1", "s-2"]
    assert known.shipments[1] == {
        "id": "s-2",
        "carrier": "SF Express",
        "tracking_number": None,
        "tracking_url": None,
        "status": "in_transit",
        "expected_delivery": None,
        "last_scan_at": None,
        "shipped_at": T0.isoformat(),
        "delivered_at": None,
    }
    # The named shipment is read even when it belongs to another order.
    assert (known.shipment or NOTHING)["id"] == "s-9"

    assert facts(db, "unknown", "s-1") == Facts(shipment=facts(db, "1", "s-1").shipment)
    assert facts(db, None, None) == Facts()


# Events that create their order, each with a different mix of what a new order can carry.
_NEW_ORDERS: dict[str, tuple[str, dict[str, Any]]] = {
    "bare order": ("order.placed", {"order": {"id": "n1"}}),
    "everything": (
        "order.shipped",
        {
            "order": {
                "id": "n2",
                "placed_at": "2026-11-19T21:13:00.250000+08:00",
                "total": "358.00",
                "currency": "CNY",
                "shipping_address": {"city": "杭州", "country": "CN"},
                "customer": {"id": "c-2", "name": "王芳", "phone": "+8613800000002"},
                "items": [
                    {"sku": "MILK-900G", "title": "奶粉", "quantity": 2, "unit_price": "179.00"},
                    {"sku": "BIB", "title": "Bib", "tags": ["gift", "cotton"]},
                ],
            },
            "shipment": {
                "id": "n2-s",
                "carrier": "SF Express",
                "tracking_number": "SF2",
                "expected_delivery": "2026-11-23",
                "last_scan_at": "2026-11-20T09:30:00+08:00",
            },
        },
    ),
    "delivered at once": ("order.delivered", {"order": {"id": "n3"}, "shipment": {"id": "n3-s"}}),
    "customer beside the order": (
        "order.paid",
        {"order": {"id": "n4", "items": []}, "customer": {"email": "Li@Example.com"}},
    ),
    "shipment known before its order": (
        "order.shipped",
        {"order": {"id": "n5"}, "shipment": {"id": "early-s", "carrier": "EMS"}},
    ),
    "returning customer, fields kept": (
        "order.placed",
        {"order": {"id": "n6", "customer": {"id": "known-c"}}},
    ),
}


@pytest.mark.parametrize("case", list(_NEW_ORDERS))
def test_the_facts_of_a_new_order_are_those_load_facts_reads_back(db: Database, case: str) -> None:
    # What the last two cases find stored: a carrier update that named no order yet, and a
    # customer with a name and a zone the new order's event leaves out.
    merge(db, shipment_update(T0 - timedelta(hours=1), "early-s", "in_transit"))
    merge(
        db,
        event(
            "customer.updated",
            T0,
            customer={"id": "known-c", "name": "Ann", "timezone": "Asia/Tokyo", "locale": "en"},
        ),
    )
    kind, fields = _NEW_ORDERS[case]
    new = event(kind, T0 + timedelta(minutes=5), **fields)
    with db.transaction() as session:
        merged = entities.merge_event(session, new, now=NOW)
        # Read in the same transaction, as the pipeline would have.
        read = entities.load_facts(
            session, order_id=merged.order_id, shipment_id=merged.shipment_id
        )
        assert entities.facts_for(session, merged) is merged.facts
    assert merged.facts == read
    assert read.order is not None and read.order["id"] == fields["order"]["id"]


def test_an_event_of_a_stored_order_has_its_facts_read(db: Database) -> None:
    merge(db, event("order.placed", T0, order={"id": "1"}))
    with db.transaction() as session:
        merged = entities.merge_event(
            session, event("order.shipped", T0, order={"id": "1"}, shipment={"id": "s"}), now=NOW
        )
        assert merged.facts is None
        assert entities.facts_for(session, merged).shipments[0]["id"] == "s"


# --- concurrency ---------------------------------------------------------------------------------


@pytest.mark.postgres
def test_concurrent_events_of_one_order_keep_each_others_changes(postgres_url: str) -> None:
    """Each event adds one address field; merged at the same time, none may be lost."""
    db = Database(postgres_url, pool_size=8)
    fields = [f"line{n}" for n in range(8)]
    try:
        merge(db, *(event("order.placed", T0, order={"id": str(n)}) for n in range(10)))

        def add_field(name: str) -> None:
            for n in range(10):
                address = {name: f"{name} of order {n}"}
                merge(
                    db, event("order.paid", T0, order={"id": str(n), "shipping_address": address})
                )

        with ThreadPoolExecutor(max_workers=len(fields)) as pool:
            list(pool.map(add_field, fields))

        for n in range(10):
            assert set(facts(db, str(n)).shipping_address or {}) == set(fields), n
    finally:
        db.dispose()
