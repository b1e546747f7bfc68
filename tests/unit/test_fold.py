"""The merge rules as a pure fold: stored rows + one event -> new rows, no database."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from carebot.events import Customer, Event, parse_event
from carebot.fold import (
    StoredState,
    customer_key,
    fold,
    fold_customer,
    fold_items,
    fold_order,
    fold_shipment,
)

T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
_ids = itertools.count()


def event(kind: str, at: datetime, **fields: Any) -> Event:
    return parse_event(
        {"id": f"evt-{next(_ids)}", "type": kind, "occurred_at": at.isoformat(), **fields}
    )


def scan(at: datetime, status: str, **fields: Any) -> Event:
    """A carrier update: it names only its shipment."""
    return event("shipment.updated", at, shipment={"id": "s-1", "status": status, **fields})


def orders(*events: Event) -> dict[str, Any]:
    """The order row after folding ``events`` in turn into nothing."""
    row: dict[str, Any] | None = None
    for one in events:
        row = fold_order(row, one)
    assert row is not None
    return row


def shipment(*events: Event, order_id: str | None = None) -> tuple[dict[str, Any], bool]:
    row: dict[str, Any] | None = None
    stale = False
    for one in events:
        row, stale = fold_shipment(row, one, order_id)
    assert row is not None
    return row, stale


# --- orders --------------------------------------------------------------------------------------


def test_a_new_order_starts_placed_and_moves_forward() -> None:
    assert orders(event("order.placed", T0, order={"id": "1"}))["status"] == "placed"
    row = orders(
        event("order.placed", T0, order={"id": "1"}),
        event("order.shipped", T0 + timedelta(hours=2), order={"id": "1"}),
    )
    assert (row["status"], row["status_at"]) == ("shipped", T0 + timedelta(hours=2))


def test_an_older_status_arriving_late_does_not_move_the_order_back() -> None:
    row = orders(
        event("order.shipped", T0 + timedelta(hours=1), order={"id": "1"}),
        event("order.paid", T0, order={"id": "1"}),
    )
    assert (row["status"], row["status_at"]) == ("shipped", T0 + timedelta(hours=1))


def test_delivered_sets_delivered_at_once() -> None:
    first = T0 + timedelta(days=2)
    row = orders(event("order.delivered", first, order={"id": "1"}))
    assert (row["status"], row["delivered_at"]) == ("delivered", first)
    again = fold_order(row, event("order.delivered", first + timedelta(days=1), order={"id": "1"}))
    assert again["delivered_at"] == first and again["status_at"] == first


@pytest.mark.parametrize("final", ["order.cancelled", "order.refunded"])
def test_cancelled_and_refunded_are_final_whatever_comes_later(final: str) -> None:
    row = orders(
        event("order.shipped", T0, order={"id": "1"}),
        event(final, T0 + timedelta(hours=1), order={"id": "1"}),
        event("order.delivered", T0 + timedelta(days=2), order={"id": "1"}),
    )
    assert row["status"] == final.split(".")[1]
    assert row["delivered_at"] is None


def test_a_partial_event_fills_in_only_what_it_carries() -> None:
    placed = event(
        "order.placed",
        T0,
        order={"id": "1", "number": "#1001", "total": "358.00", "currency": "CNY"},
    )
    row = orders(placed, event("order.paid", T0 + timedelta(hours=1), order={"id": "1"}))
    assert (row["number"], row["total"], row["currency"]) == ("#1001", "358.00", "CNY")


def test_addresses_merge_field_by_field() -> None:
    row = orders(
        event("order.placed", T0, order={"id": "1", "shipping_address": {"city": "杭州"}}),
        event("order.paid", T0, order={"id": "1", "shipping_address": {"country": "CN"}}),
    )
    assert row["shipping_address"] == {"city": "杭州", "country": "CN"}
    assert row["billing_address"] is None


def test_the_fold_does_not_change_the_stored_row() -> None:
    stored = orders(event("order.placed", T0, order={"id": "1"}))
    before = dict(stored)
    fold_order(stored, event("order.paid", T0 + timedelta(hours=1), order={"id": "1"}))
    assert stored == before


def test_items_replace_the_stored_ones_only_when_the_event_carries_them() -> None:
    with_items = event(
        "order.placed", T0, order={"id": "1", "items": [{"sku": "A", "quantity": 2}]}
    )
    [item] = fold_items("1", with_items) or []
    assert (item["sku"], item["quantity"], item["position"], item["tags"]) == ("A", 2, 0, [])
    assert fold_items("1", event("order.paid", T0, order={"id": "1"})) is None


# --- shipments -----------------------------------------------------------------------------------


def test_a_shipped_order_implies_in_transit_and_sets_shipped_at() -> None:
    shipped = event("order.shipped", T0, order={"id": "1"}, shipment={"id": "s-1"})
    row, stale = shipment(shipped, order_id="1")
    assert (row["status"], row["shipped_at"], row["order_id"], stale) == (
        "in_transit",
        T0,
        "1",
        False,
    )


def test_out_of_order_scans_keep_the_newest_status_and_fill_in_what_is_missing() -> None:
    newer = scan(T0 + timedelta(hours=5), "out_for_delivery", carrier="SF")
    older = scan(T0 + timedelta(hours=1), "in_transit", carrier="EMS", tracking_number="SF9")
    row, stale = shipment(newer, older)
    assert stale
    assert (row["status"], row["status_at"]) == ("out_for_delivery", T0 + timedelta(hours=5))
    assert (row["carrier"], row["tracking_number"]) == ("SF", "SF9")
    assert row["last_scan_at"] == T0 + timedelta(hours=5)


def test_a_newer_scan_overwrites_the_details() -> None:
    row, stale = shipment(
        scan(T0, "in_transit", carrier="EMS"),
        scan(T0 + timedelta(hours=1), "exception", carrier="SF"),
    )
    assert (row["status"], row["carrier"], stale) == ("exception", "SF", False)


@pytest.mark.parametrize("final", ["delivered", "cancelled"])
def test_delivered_and_cancelled_shipments_keep_their_status(final: str) -> None:
    row, _ = shipment(scan(T0, final), scan(T0 + timedelta(hours=1), "failed_attempt"))
    assert row["status"] == final
    assert (row["delivered_at"] is not None) is (final == "delivered")


def test_a_failed_attempt_is_not_final() -> None:
    row, _ = shipment(scan(T0, "failed_attempt"), scan(T0 + timedelta(hours=1), "delivered"))
    assert (row["status"], row["delivered_at"]) == ("delivered", T0 + timedelta(hours=1))


def test_the_whole_order_delivered_delivers_a_shipment_of_a_known_order() -> None:
    delivered = event("order.delivered", T0, order={"id": "1"}, shipment={"id": "s-1"})
    row, _ = shipment(delivered, order_id="1")
    assert (row["status"], row["delivered_at"]) == ("delivered", T0)


def test_a_scan_without_a_time_of_its_own_counts_as_scanned_when_it_occurred() -> None:
    row, _ = shipment(scan(T0, "in_transit"))
    assert row["last_scan_at"] == T0


# --- customers and the whole state ---------------------------------------------------------------


def test_customer_keys_prefer_the_platform_id_then_email_then_phone() -> None:
    def key(**fields: Any) -> str | None:
        return customer_key(Customer(**fields))

    assert key(id="c-1", email="A@x.com") == "c-1"
    assert key(email="A@X.com", phone="+8613800138000") == "email:a@x.com"
    assert key(phone="+8613800138000") == "phone:+8613800138000"


def test_a_customer_field_the_event_does_not_carry_keeps_what_is_stored() -> None:
    named = event("customer.updated", T0, customer={"id": "c-1", "name": "王芳"}).customer
    assert named is not None
    merged = fold_customer({"id": "c-1", "phone": "+8613800138000"}, named, "c-1")
    assert (merged["name"], merged["phone"], merged["email"]) == ("王芳", "+8613800138000", None)


def test_fold_of_one_event_into_nothing_is_what_a_new_store_holds() -> None:
    placed = event(
        "order.shipped",
        T0,
        order={"id": "1", "customer": {"email": "wang@example.com", "name": "王芳"}},
        shipment={"id": "s-1", "tracking_number": "SF1"},
    )
    state = fold(StoredState(), placed)
    assert state.order is not None and state.customer is not None and state.shipment is not None
    assert state.order["status"] == "shipped"
    assert state.order["customer_id"] == state.customer["id"] == "email:wang@example.com"
    assert (state.shipment["order_id"], state.shipment["status"]) == ("1", "in_transit")
    assert state.items is None and not state.stale


def test_fold_without_an_order_folds_only_the_shipment() -> None:
    state = fold(StoredState(), scan(T0, "in_transit"))
    assert state.order is None and state.customer is None and state.items is None
    assert state.shipment is not None and state.shipment["order_id"] is None
