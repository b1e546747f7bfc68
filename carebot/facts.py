"""What the store knows around one event: typed, frozen value objects.

The planner reads them by attribute; conditions and templates see them as plain JSON-friendly
mappings (``as_context``). Each record is also a read-only ``Mapping`` of its fields, so
``facts.order["id"]`` and comparing with a dict keep working. Values are as stored and read back:
instants as ISO strings in UTC, dates as ISO strings, amounts as strings.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

__all__ = [
    "CustomerFacts",
    "Facts",
    "ItemFacts",
    "OrderFacts",
    "ShipmentFacts",
    "facts_from_rows",
    "iso",
    "shipment_facts",
    "utc_iso",
]

_R = TypeVar("_R", bound="_Record")


def _plain(value: Any) -> Any:
    """A field as JSON sees it: tuples (frozen lists) become lists."""
    return list(value) if isinstance(value, tuple) else value


class _Record(Mapping[str, Any]):
    """A frozen record that reads as a mapping of its fields, in declaration order."""

    __slots__ = ()
    KEYS: ClassVar[tuple[str, ...]] = ()

    def __getitem__(self, key: str) -> Any:
        if key not in self.KEYS:
            raise KeyError(key)
        return _plain(getattr(self, key))

    def __iter__(self) -> Iterator[str]:
        return iter(self.KEYS)

    def __len__(self) -> int:
        return len(self.KEYS)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.as_context()!r})"

    def as_context(self) -> dict[str, Any]:
        """A fresh plain dict of the fields, for conditions, templates and stored contexts."""
        return {name: _plain(getattr(self, name)) for name in self.KEYS}

    @classmethod
    def from_mapping(cls: type[_R], data: Mapping[str, Any]) -> _R:
        """The record of ``data``'s fields (absent ones are None, unknown ones are dropped)."""
        if isinstance(data, cls):
            return data
        return cls(**{name: data.get(name) for name in cls.KEYS})


def _keys(cls: type[_Record]) -> type[_Record]:
    cls.KEYS = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
    return cls


@_keys
@dataclass(frozen=True, slots=True, eq=False)
class OrderFacts(_Record):
    id: str | None = None
    number: str | None = None
    placed_at: str | None = None
    total: str | None = None
    currency: str | None = None
    status: str | None = None
    delivered_at: str | None = None


@_keys
@dataclass(frozen=True, slots=True, eq=False)
class CustomerFacts(_Record):
    id: str | None = None
    name: str | None = None
    phone: str | None = None
    email: str | None = None
    locale: str | None = None
    timezone: str | None = None


@_keys
@dataclass(frozen=True, slots=True, eq=False)
class ShipmentFacts(_Record):
    id: str | None = None
    carrier: str | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None
    status: str | None = None
    expected_delivery: str | None = None
    last_scan_at: str | None = None
    shipped_at: str | None = None
    delivered_at: str | None = None


@_keys
@dataclass(frozen=True, slots=True, eq=False)
class ItemFacts(_Record):
    sku: str | None = None
    title: str | None = None
    quantity: int | None = None
    unit_price: Any = None
    tags: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ItemFacts:
        if isinstance(data, ItemFacts):
            return data
        return cls(
            sku=data.get("sku"),
            title=data.get("title"),
            quantity=data.get("quantity"),
            unit_price=data.get("unit_price"),
            tags=tuple(data.get("tags") or ()),
        )


def _record(cls: type[_R], value: Mapping[str, Any] | None) -> _R | None:
    return None if value is None else cls.from_mapping(value)


@dataclass(frozen=True, slots=True, init=False)
class Facts:
    """What the store knows around one event: the order, its customer, addresses, shipments.

    Accepts plain mappings for any record (they are read into the typed record).
    """

    order: OrderFacts | None
    customer: CustomerFacts | None
    shipping_address: Mapping[str, Any] | None
    billing_address: Mapping[str, Any] | None
    # The shipment the event is about, and every shipment of the order.
    shipment: ShipmentFacts | None
    shipments: list[ShipmentFacts]
    items: list[ItemFacts]

    def __init__(
        self,
        order: Mapping[str, Any] | None = None,
        customer: Mapping[str, Any] | None = None,
        shipping_address: Mapping[str, Any] | None = None,
        billing_address: Mapping[str, Any] | None = None,
        shipment: Mapping[str, Any] | None = None,
        shipments: Iterable[Mapping[str, Any]] = (),
        items: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        init = object.__setattr__
        init(self, "order", _record(OrderFacts, order))
        init(self, "customer", _record(CustomerFacts, customer))
        init(self, "shipping_address", shipping_address)
        init(self, "billing_address", billing_address)
        init(self, "shipment", _record(ShipmentFacts, shipment))
        init(self, "shipments", [ShipmentFacts.from_mapping(s) for s in shipments])
        init(self, "items", [ItemFacts.from_mapping(i) for i in items])

    @property
    def order_id(self) -> str | None:
        return self.order.id if self.order is not None else None

    @property
    def customer_id(self) -> str | None:
        return self.customer.id if self.customer is not None else None

    @property
    def shipment_id(self) -> str | None:
        return self.shipment.id if self.shipment is not None else None

    @property
    def order_status(self) -> str | None:
        return self.order.status if self.order is not None else None


# --- from stored values -------------------------------------------------------------------------


def iso(value: Any) -> Any:
    """A stored value as JSON sees it: dates and instants in ISO form, the rest as it is."""
    return value.isoformat() if value is not None and hasattr(value, "isoformat") else value


def utc_iso(value: Any) -> Any:
    """A written value as the store reads it back: instants in UTC, dates as they are."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return iso(value)


def shipment_facts(row: Mapping[str, Any], shipment_id: str | None) -> ShipmentFacts:
    """A written shipment row (``fold.SHIPMENT_COLUMNS``) as the store would read it back."""
    values = {name: utc_iso(row.get(name)) for name in ShipmentFacts.KEYS[1:]}
    return ShipmentFacts(id=shipment_id, **values)


def facts_from_rows(
    order_id: str,
    order: Mapping[str, Any],
    *,
    customer: Mapping[str, Any] | None,
    shipment: ShipmentFacts | None,
    items: Iterable[Mapping[str, Any]] | None,
) -> Facts:
    """The facts of an order the store just created, from the rows written for it.

    Nothing else can belong to a new order: a shipment names a stored order (foreign key), so
    its only shipment is the event's, and its items are the event's.
    """
    values = {name: utc_iso(order[name]) for name in OrderFacts.KEYS[1:]}
    shipments = [] if shipment is None else [shipment]
    return Facts(
        order=OrderFacts(id=order_id, **values),
        customer=customer,
        shipping_address=dict(order["shipping_address"] or {}),
        billing_address=dict(order["billing_address"] or {}),
        shipment=shipment,
        shipments=shipments,
        items=items or (),
    )
