"""Typed facts: frozen records that read as plain mappings for conditions and templates."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest

from carebot.facts import Facts, ItemFacts, OrderFacts, ShipmentFacts, facts_from_rows


def test_a_record_reads_as_a_mapping_of_all_its_fields_in_order() -> None:
    order = OrderFacts(id="1", status="paid")
    assert order["id"] == "1" and order.get("number") is None
    assert list(order) == [
        "id",
        "number",
        "placed_at",
        "total",
        "currency",
        "status",
        "delivered_at",
    ]
    assert order == {**dict.fromkeys(order), "id": "1", "status": "paid"}
    with pytest.raises(KeyError):
        order["nope"]


def test_records_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        OrderFacts(id="1").status = "paid"  # type: ignore[misc]


def test_plain_mappings_are_read_into_records_and_unknown_keys_dropped() -> None:
    facts = Facts(order={"id": "1", "extra": True}, items=[{"sku": "A", "tags": ["x"]}])
    assert isinstance(facts.order, OrderFacts) and facts.order_id == "1"
    assert "extra" not in facts.order
    assert facts.items == [ItemFacts(sku="A", tags=("x",))]
    assert facts.items[0].as_context()["tags"] == ["x"]
    assert Facts() == Facts(shipments=[], items=[])


def test_the_context_view_is_a_fresh_plain_dict() -> None:
    shipment = ShipmentFacts(id="s-1", status="in_transit")
    view = shipment.as_context()
    view["status"] = "delivered"
    assert shipment.status == "in_transit" and type(view) is dict


def test_facts_from_written_rows_read_instants_back_in_utc() -> None:
    at = datetime(2026, 11, 20, 10, 0, tzinfo=timezone(timedelta(hours=8)))
    row = {
        "number": None,
        "placed_at": at,
        "total": "1.00",
        "currency": "CNY",
        "status": "placed",
        "delivered_at": None,
        "shipping_address": None,
        "billing_address": {"country": "CN"},
    }
    facts = facts_from_rows("1", row, customer=None, shipment=None, items=None)
    assert facts.order is not None
    assert facts.order.placed_at == at.astimezone(UTC).isoformat()
    assert facts.shipping_address == {} and facts.billing_address == {"country": "CN"}
    assert facts.shipments == [] and facts.items == [] and facts.customer is None
