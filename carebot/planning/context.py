"""The values conditions, delays and templates see: the event and the facts around it."""

from __future__ import annotations

from typing import Any

from carebot.events import Event
from carebot.facts import Facts
from carebot.rulebook.schema import Rulebook

__all__ = ["build_context"]

# What a watcher or source attached to the event, kept under the event's extra fields: the
# restock watcher's run-out and order-by dates; a tracking source's newest carrier scan.
_EXTRA_SECTIONS = ("restock", "checkpoint")
# Sections the event carries as mappings of their own.
_EVENT_SECTIONS = ("feedback", "case", "digest")


def _event_sections(event: Event) -> dict[str, Any]:
    """The sections only some events carry (a message, a disruption, a case…), in order."""
    sections: dict[str, Any] = {}
    if event.message is not None:
        sections["message"] = event.message.model_dump(mode="json", by_alias=True)
    if event.disruption is not None:
        sections["disruption"] = dict(event.disruption)
    extra = event.model_extra or {}
    for name in _EXTRA_SECTIONS:
        if isinstance(extra.get(name), dict):
            sections[name] = dict(extra[name])
    for name in _EVENT_SECTIONS:
        value = getattr(event, name)
        if value is not None:
            sections[name] = dict(value)
    return sections


def _order(facts: Facts) -> dict[str, Any]:
    if facts.order is None:
        return {}
    order = facts.order.as_context()
    if not order.get("number"):
        # The number the customer knows; a source that gives none means the id is that number.
        order["number"] = order.get("id")
    return order


def _items(facts: Facts, rulebook: Rulebook) -> list[dict[str, Any]]:
    """The line items, each with its product profile from the rule book (run-out days…)."""
    items = []
    for item in facts.items:
        enriched = item.as_context()
        enriched.update(rulebook.profile_for(item.sku, enriched["tags"]))
        items.append(enriched)
    return items


def build_context(
    event: Event, facts: Facts, *, rulebook: Rulebook, shop_name: str
) -> dict[str, Any]:
    """The JSON-friendly values conditions, delays and templates see."""
    return {
        "event": {
            "id": event.id,
            "type": str(event.type),
            "occurred_at": event.occurred_at.isoformat(),
        },
        "order": _order(facts),
        "customer": facts.customer.as_context() if facts.customer is not None else {},
        "shipping_address": facts.shipping_address or {},
        "billing_address": facts.billing_address or {},
        "shipment": facts.shipment.as_context() if facts.shipment is not None else {},
        "shipments": [shipment.as_context() for shipment in facts.shipments],
        "items": _items(facts, rulebook),
        "shop": {"name": shop_name},
        **_event_sections(event),
    }
